"""What every native batched uplink vector env shares (ChannelPower-v0, QFL-v0).

Action validation and encoding, per-env seeds and generators, the channel handle, and
the masking of vector ``info`` dicts for Gymnasium's same-step autoreset. The
subclasses own the physics of a step and their observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.allocation_env import AllocationHooks
from qfl_gym.envs.observation import ObservationLayout
from qfl_gym.validation import check_int
from qfl_gym.wireless.channel_batch import UplinkChannelBatch
from qfl_gym.wireless.config import UplinkConfig
from qfl_gym.wireless.problem import ProblemConstants


class UplinkVectorEnv(AllocationHooks, VectorEnv):
    """Base of the batched uplink vector envs.

    ``__init__(num_envs, config, render_mode, autoreset_mode)`` checks the arguments,
    keeps the uplink ``config``, builds the action codec and spaces and the per-env seed
    slots, then calls the hooks in order (as the single envs'
    :class:`~qfl_gym.envs.allocation_env.AllocationEnv`):

    1. :meth:`_build`: the batched system (``channel``, an
       :class:`~qfl_gym.wireless.channel_batch.UplinkChannelBatch`, and the rest);
    2. :meth:`_make_layout`: the single observation's :class:`ObservationLayout`, which
       gives ``single_observation_space`` and ``observation_space``;
    3. :meth:`_make_constants`: the :class:`ProblemConstants` of every sub-env's problem.
    """

    channel: UplinkChannelBatch
    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int,
        config: UplinkConfig,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        self.num_envs = n = check_int("num_envs", num_envs, low=1)
        self._init_modes(render_mode, autoreset_mode)
        self.config = config
        self.num_devices = config.num_devices
        self.num_subchannels = config.num_subchannels
        self.codec = ActionCodec.for_config(config)
        self.single_action_space = self.codec.space()
        self.action_space = batch_space(self.single_action_space, n)
        self._nvec_u = self.codec.nvec.astype(np.uint64)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._seeds: list[int | None] = [None] * n
        self._needs_reset = True
        self._build()
        self.observation_layout: ObservationLayout = self._make_layout()
        self.single_observation_space = self.observation_layout.space()
        self.observation_space = batch_space(self.single_observation_space, n)
        self._constants: ProblemConstants = self._make_constants()

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-environments (or those of ``options["reset_mask"]``).

        Parameters
        ----------
        seed : int, sequence of int or None, optional
            ``s`` seeds sub-environment ``i`` with ``s + i``; a sequence gives one seed
            (or None) per sub-environment; None keeps the current generators.
        options : dict, optional
            ``{"reset_mask": mask}`` (bool array of shape (n,)) resets only the
            sub-environments where ``mask`` is True; other keys are ignored.

        Returns
        -------
        observations : ndarray, shape (n, observation_layout.size)
        info : dict
            The reset sub-environments' reset ``info``, batched with masks (see the
            class docstring).
        """
        idx, masked = self._rows_to_reset(seed, options)
        obs, info = self._reset_selected(idx, masked)
        self._needs_reset = False
        return obs, info

    def _reset_selected(self, idx: np.ndarray, masked: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-environments ``idx`` (their generators are ready; ``masked``: a
        ``reset_mask`` chose them); return all observations and the reset ``info``."""
        raise NotImplementedError

    def _init_modes(self, render_mode: Any, autoreset_mode: Any) -> None:
        """Check ``render_mode`` (must be None) and set ``autoreset_mode`` and metadata."""
        if render_mode is not None:
            raise ValueError(
                f"{type(self).__name__} does not render; render_mode must be None, "
                f"got {render_mode!r}"
            )
        self.render_mode = None
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            valid = ", ".join(repr(m.value) for m in AutoresetMode)
            raise ValueError(
                f"unknown autoreset_mode {autoreset_mode!r}; valid: {valid} "
                "(or gymnasium.vector.AutoresetMode members)"
            ) from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}

    def render(self) -> None:
        """No rendering (``render_mode`` is None); see the single env's ``ansi`` mode."""
        return None

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the channel's worker threads, if ``num_threads > 1`` started any."""
        channel = getattr(self, "channel", None)  # absent if __init__ failed
        if channel is not None:
            channel.close()

    @property
    def gains(self) -> np.ndarray:
        """Current gains (n, K, N) of every sub-environment (read-only)."""
        return self.channel.gains

    def decode_actions(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """``actions (n, 2K) -> (channels (n, K), power_levels (n, K))``; validates."""
        a = self._validate(actions)
        K = self.num_devices
        return a[:, :K], a[:, K:]

    def encode_actions(self, channels: Any, power_levels: Any) -> np.ndarray:
        """``(channels (n, K), power_levels (n, K)) -> actions (n, 2K)``; validates."""
        return self._validate(self.codec.encode(channels, power_levels))

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        """The seed of every sub-environment's generator (as ``SyncVectorEnv``)."""
        return tuple(self._seeds)

    @property
    def np_random(self) -> tuple[np.random.Generator | None, ...]:
        """Every sub-environment's generator (as ``SyncVectorEnv``)."""
        return tuple(self._rngs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, K={self.num_devices}, "
            f"N={self.num_subchannels}, autoreset_mode={self.autoreset_mode.name})"
        )

    def _rows_to_reset(self, seed: Any, options: dict[str, Any] | None) -> tuple[np.ndarray, bool]:
        """The sub-environments a ``reset(seed, options)`` resets, reseeded as asked.

        Validates ``options["reset_mask"]`` and (re)creates the generator of every
        selected sub-environment given a seed or not yet seeded. Returns the indices and
        whether a mask selected them (False: a reset of every sub-environment).
        """
        n = self.num_envs
        seeds = seed_list(seed, n)
        mask = None
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({n},), "
                    f"got dtype {mask.dtype} and shape {mask.shape}"
                )
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one environment")
            if self._needs_reset and not mask.all():
                raise ValueError("the first reset must reset every environment (no reset_mask)")
        idx = np.arange(n) if mask is None else np.flatnonzero(mask)
        for i in idx.tolist():
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], self._seeds[i] = seeding.np_random(seeds[i])
        return idx, mask is not None

    def _split_for_same_step(
        self, done: np.ndarray, obs: np.ndarray, info: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A SAME_STEP autoreset's ``info`` parts: that of the sub-environments going on
        (the reset ones add their reset info to it), and the ``final_obs`` /
        ``final_info`` keys (with masks) of those in ``done``, to add after the reset."""
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(done).tolist():
            final_obs[i] = obs[i].copy()
        finals = {
            "final_obs": final_obs,
            "_final_obs": done.copy(),
            "final_info": mask_info(info, done),
            "_final_info": done.copy(),
        }
        return mask_info(info, ~done), finals

    def _validate(self, actions: Any) -> np.ndarray:
        """``actions`` as an int64 (n, 2K) array; ``ValueError`` naming the bad entry."""
        a = actions if type(actions) is np.ndarray else np.asarray(actions)
        shape = (self.num_envs, self.codec.shape[0])
        # fast path: int64 of the right shape, every column below its bound (negative
        # entries wrap to huge unsigned values)
        if (
            a.dtype == np.int64
            and a.shape == shape
            and (a.view(np.uint64).max(axis=0) < self._nvec_u).all()
        ):
            return a
        if a.shape != shape:
            raise ValueError(
                f"actions must have shape {shape} = (num_envs, 2K); got shape {a.shape}"
            )
        try:
            return self.codec.validate(a, batched=True)
        except ValueError as err:
            raise ValueError(f"actions: {err} (first index: sub-environment)") from None


def seed_list(seed: Any, n: int) -> list[int | None]:
    """One seed (or None) per sub-environment: ``s + i`` from an int, or a sequence."""
    if seed is None:
        return [None] * n
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"seed must be an int or {n} seeds (one per environment), got {seed!r}")
    return [None if s is None else check_int(f"seed[{i}]", s, low=0) for i, s in enumerate(seeds)]


def mask_info(info: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """``info`` restricted to the sub-environments in ``keep`` (others zeroed/None).

    Keys no kept sub-environment reports are dropped, as ``SyncVectorEnv`` never
    creates them.
    """
    if not keep.any():
        return {}
    out: dict[str, Any] = {}
    drop = ~keep
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info[f"_{key}"] & keep
        if not mask.any():
            continue
        if isinstance(value, dict):
            value = mask_info(value, keep)
        else:
            value = value.copy()
            value[drop & info[f"_{key}"]] = None if value.dtype == object else 0
        out[key] = value
        out[f"_{key}"] = mask
    return out


def reject_max_episode_steps(overrides: dict[str, Any], length_field: str) -> None:
    """Native vector envs set their episode length in the scenario, not by a wrapper."""
    if "max_episode_steps" in overrides:
        raise ValueError(
            "max_episode_steps is not supported by the native vector env; set the "
            f"episode length with {length_field}=... (got max_episode_steps="
            f"{overrides['max_episode_steps']!r})"
        )
