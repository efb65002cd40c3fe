"""One ``Discrete`` action for the whole joint assignment (DQN and friends; small K)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from qfl_gym.validation import check_int
from qfl_gym.wrappers.action_mask import env_codec

DEFAULT_MAX_ACTIONS = 4096


class DiscreteJointAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Discrete((N*L)**K)``: one index per joint (sub-channel, power level) assignment.

    Index ``a`` assigns device ``k`` the choice ``d_k = (a // (N*L)**k) % (N*L)``
    (device 0 is the least significant digit), i.e. sub-channel ``d_k // L`` and power
    level ``d_k % L``; :meth:`encode`/:meth:`decode` convert. Only for small scenarios:
    ``scenario="small"`` (K=4, N=2, L=2) has 256 joint actions.

    Parameters
    ----------
    env : gymnasium.Env
        A qfl_gym environment (``MultiDiscrete`` action of length 2K).
    max_actions : int
        Refuse scenarios with more joint actions than this (the size of a DQN's output
        layer); default 4096.

    Notes
    -----
    Over an :class:`~qfl_gym.wrappers.action_mask.ActionMaskWrapper`, ``info["action_mask"]``
    and :meth:`action_masks` become the (``(N*L)**K``,) mask of allowed joint actions.
    """

    def __init__(self, env: gym.Env, max_actions: int = DEFAULT_MAX_ACTIONS) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, max_actions=max_actions)
        gym.ActionWrapper.__init__(self, env)
        self.codec = codec = env_codec(env)
        K, N, L = codec.num_devices, codec.num_subchannels, codec.num_power_levels
        max_actions = check_int("max_actions", max_actions, low=1)
        size = (N * L) ** K
        if size > max_actions:
            raise ValueError(
                f"K={K} devices with N={N} sub-channels and L={L} levels give (N*L)**K = "
                f"{size} joint actions, more than max_actions={max_actions}; use a smaller "
                "scenario (scenario='small' has 256) or raise max_actions"
            )
        self.num_actions = size
        digits = (np.arange(size)[:, None] // (N * L) ** np.arange(K)) % (N * L)  # (M, K)
        self._digits = digits
        table = np.concatenate([digits // L, digits % L], axis=1).astype(np.int64)
        table.flags.writeable = False
        self._table = table  # (M, 2K): the MultiDiscrete action of every index
        self.action_space = spaces.Discrete(size)

    def action(self, action: Any) -> np.ndarray:
        a = np.asarray(action)
        if a.shape not in ((), (1,)) or a.dtype.kind not in "iu":
            raise ValueError(f"action must be one integer index, got {action!r}")
        index = int(a.reshape(()))
        if not 0 <= index < self.num_actions:
            raise ValueError(f"action {index} is out of range 0..{self.num_actions - 1}")
        return self._table[index]

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._translate_mask(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        self._translate_mask(info)
        return obs, reward, terminated, truncated, info

    def encode(self, channels: Any, power_levels: Any) -> int:
        """The index of the assignment ``(channels (K,), power_levels (K,))``."""
        a = self.codec.encode(channels, power_levels)
        K, L = self.codec.num_devices, self.codec.num_power_levels
        digits = a[:K] * L + a[K:]
        return int(np.sum(digits * (self.codec.num_subchannels * L) ** np.arange(K)))

    def decode(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """``index -> (channels (K,), power_levels (K,))``."""
        a = self.action(index)
        K = self.codec.num_devices
        return a[:K].copy(), a[K:].copy()

    def action_masks(self) -> np.ndarray:
        """Allowed joint actions (M,) bool, from an inner ActionMaskWrapper (else all)."""
        inner = self._inner_masks()
        if inner is None:
            return np.ones(self.num_actions, dtype=bool)
        channel_mask, level_mask = inner
        K = self.codec.num_devices
        pair = (channel_mask[:, :, None] & level_mask[:, None, :]).reshape(K, -1)  # (K, N*L)
        return pair[np.arange(K), self._digits].all(axis=1)

    def _inner_masks(self) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return self.env.get_wrapper_attr("channel_mask"), self.env.get_wrapper_attr(
                "level_mask"
            )
        except AttributeError:
            return None

    def _translate_mask(self, info: dict[str, Any]) -> None:
        if "action_mask" in info:
            info["action_mask"] = self.action_masks()
