"""A continuous ``Box`` action for SAC, TD3 and other continuous-control agents."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from qfl_gym.wrappers.action_mask import env_codec


class ContinuousAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Box(-1, 1, (K*(N+1),))``: per-device sub-channel scores and a power fraction.

    Layout: entries ``0..K*N-1`` are device ``k``'s score for sub-channel ``n``
    (row-major ``k, n``); entries ``K*N..K*N+K-1`` its power fraction ``x_k``. Device
    ``k`` takes the sub-channel of highest score (ties: the lower index) and the level
    nearest ``f_k (L - 1)`` with ``f_k = (x_k + 1) / 2`` in [0, 1] (levels are
    equally spaced in dBm, so ``f`` is the fraction of the dBm range; ties: the lower
    level). The range [-1, 1] matches tanh-squashed policies (SB3's SAC/TD3 rescale
    to the space's bounds).

    Over an :class:`~qfl_gym.wrappers.action_mask.ActionMaskWrapper`, masked choices are
    never taken: the best-scoring *allowed* sub-channel and the nearest *allowed* level.

    A non-finite or out-of-range action raises ``ValueError`` (nothing is clipped).
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        self.codec = codec = env_codec(env)
        K, N = codec.num_devices, codec.num_subchannels
        self.action_space = spaces.Box(-1.0, 1.0, shape=(K * (N + 1),), dtype=np.float32)
        self._levels = np.arange(codec.num_power_levels)

    def action(self, action: Any) -> np.ndarray:
        codec = self.codec
        K, N, L = codec.num_devices, codec.num_subchannels, codec.num_power_levels
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape} = (K*(N+1),) "
                f"(K*N sub-channel scores, then K power fractions); got {a.shape}"
            )
        bad = ~np.isfinite(a) | (np.abs(a) > 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action[{i}] = {a[i]!r} is outside [-1, 1]")
        scores = a[: K * N].reshape(K, N)
        target = (a[K * N :] + 1.0) * 0.5 * (L - 1)  # (K,) in level units
        masks = self._inner_masks()
        if masks is not None:
            channel_mask, level_mask = masks
            scores = np.where(channel_mask, scores, -np.inf)
        channels = np.argmax(scores, axis=1)
        distance = np.abs(self._levels[None, :] - target[:, None])  # (K, L)
        if masks is not None:
            distance = np.where(level_mask, distance, np.inf)
        levels = np.argmin(distance, axis=1)
        return codec.encode(channels, levels)

    def _inner_masks(self) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return self.env.get_wrapper_attr("channel_mask"), self.env.get_wrapper_attr(
                "level_mask"
            )
        except AttributeError:
            return None
