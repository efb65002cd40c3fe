"""Action masks: sub-channels and power levels a device may not use.

:class:`ActionMaskWrapper` restricts, per device, the sub-channels (a device kept off a
sub-channel, or a sub-channel closed to everyone) and power levels it may choose, from
static masks, a minimum-SNR rule or any function of the decision instance. The mask
of the next decision is in ``info["action_mask"]`` and ``action_masks()``, in the
layout sb3-contrib's ``MaskablePPO`` expects for a ``MultiDiscrete`` action space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from qfl_gym.envs.action import ActionCodec
from qfl_gym.wireless.problem import AllocationProblem

MaskFn = Callable[[AllocationProblem], tuple[Any, Any]]


def env_codec(env: gym.Env) -> ActionCodec:
    """The :class:`ActionCodec` of a (possibly wrapped) qfl_gym environment."""
    codec = getattr(env.unwrapped, "codec", None)
    if not isinstance(codec, ActionCodec):
        raise ValueError(
            "this wrapper needs a qfl_gym environment (with a sub-channel/power action "
            f"codec); got {type(env.unwrapped).__name__}"
        )
    return codec


def _as_mask(name: str, value: Any, rows: int, cols: int, col_name: str) -> np.ndarray:
    """``value`` as a (rows, cols) bool mask; a (cols,) mask applies to every device."""
    m = np.asarray(value)
    if m.dtype != np.bool_:
        raise ValueError(f"{name} must be a bool array, got dtype {m.dtype}")
    if m.shape == (cols,):
        m = np.broadcast_to(m, (rows, cols))
    if m.shape != (rows, cols):
        raise ValueError(
            f"{name} must have shape ({cols},) (every device) or ({rows}, {cols}) "
            f"(devices x {col_name}); got {m.shape}"
        )
    return np.array(m, dtype=bool)


def _check_rows(name: str, mask: np.ndarray, what: str) -> None:
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ValueError(f"{name} leaves device {int(empty[0])} no allowed {what}")


class ActionMaskWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Mask sub-channels and power levels per device; ``info["action_mask"]`` for MaskablePPO.

    Parameters
    ----------
    env : gymnasium.Env
        A qfl_gym environment (``info["problem"]`` on reset and step).
    channel_mask : array_like of bool, shape (N,) or (K, N), optional
        Sub-channels each device may use (``(N,)``: the same for every device, e.g.
        ``[True, True, True, False]`` closes sub-channel 3; ``mask[k, n] = False`` keeps
        device ``k`` off sub-channel ``n``).
    level_mask : array_like of bool, shape (L,) or (K, L), optional
        Power levels each device may use (e.g. a battery-limited device without its
        top level).
    min_snr_db : float, optional
        Also forbid sub-channels on which a device's full-power SNR is below this, dB
        (deep fades); a device always keeps its best allowed sub-channel.
    mask_fn : callable, optional
        ``mask_fn(problem) -> (channel_mask (K, N), level_mask (K, L))`` (either may be
        None) for the next decision; combined with the others by logical and.

    Notes
    -----
    ``info["action_mask"]`` (and :meth:`action_masks`) is a bool array of length
    ``K*N + K*L``: for each action entry in order, one flag per choice (device 0's
    sub-channels, ..., device K-1's sub-channels, device 0's levels, ...). A step with
    a masked choice raises ``ValueError``. :meth:`sample_mask` gives the same mask as
    gymnasium's ``MultiDiscrete.sample(mask=...)`` tuple. A mask that leaves a device
    no choice raises ``ValueError``.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        channel_mask: Any = None,
        level_mask: Any = None,
        min_snr_db: float | None = None,
        mask_fn: MaskFn | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            channel_mask=channel_mask,
            level_mask=level_mask,
            min_snr_db=min_snr_db,
            mask_fn=mask_fn,
        )
        gym.Wrapper.__init__(self, env)
        self.codec = codec = env_codec(env)
        K, N, L = codec.num_devices, codec.num_subchannels, codec.num_power_levels
        self._static_channels = (
            np.ones((K, N), dtype=bool)
            if channel_mask is None
            else _as_mask("channel_mask", channel_mask, K, N, "sub-channels")
        )
        self._static_levels = (
            np.ones((K, L), dtype=bool)
            if level_mask is None
            else _as_mask("level_mask", level_mask, K, L, "power levels")
        )
        _check_rows("channel_mask", self._static_channels, "sub-channel")
        _check_rows("level_mask", self._static_levels, "power level")
        if min_snr_db is not None and not np.isfinite(min_snr_db):
            raise ValueError(f"min_snr_db must be a finite number (dB), got {min_snr_db!r}")
        if mask_fn is not None and not callable(mask_fn):
            raise ValueError(f"mask_fn must be callable, got {type(mask_fn).__name__}")
        self.min_snr_db = None if min_snr_db is None else float(min_snr_db)
        self.mask_fn = mask_fn
        self.channel_mask = self._static_channels.copy()
        self.level_mask = self._static_levels.copy()

    # ------------------------------------------------------------------ API
    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._update(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        channels, levels = self.codec.decode(action)
        K = self.codec.num_devices
        bad_c = ~self.channel_mask[np.arange(K), channels]
        if bad_c.any():
            k = int(np.flatnonzero(bad_c)[0])
            raise ValueError(
                f"device {k} may not use sub-channel {int(channels[k])} now "
                f"(allowed: {np.flatnonzero(self.channel_mask[k]).tolist()}; see action_mask)"
            )
        bad_l = ~self.level_mask[np.arange(K), levels]
        if bad_l.any():
            k = int(np.flatnonzero(bad_l)[0])
            raise ValueError(
                f"device {k} may not use power level {int(levels[k])} now "
                f"(allowed: {np.flatnonzero(self.level_mask[k]).tolist()}; see action_mask)"
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._update(info)
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """The current mask, flat (K*N + K*L,) bool (sb3-contrib's ``MaskablePPO``)."""
        return np.concatenate([self.channel_mask.ravel(), self.level_mask.ravel()])

    def sample_mask(self) -> tuple[np.ndarray, ...]:
        """The mask as ``MultiDiscrete.sample(mask=...)`` takes it: one int8 row per entry."""
        rows = [*self.channel_mask, *self.level_mask]
        return tuple(r.astype(np.int8) for r in rows)

    # ------------------------------------------------------------ internals
    def _update(self, info: dict[str, Any]) -> None:
        channels = self._static_channels.copy()
        levels = self._static_levels.copy()
        problem = info.get("problem")
        dynamic = self.mask_fn is not None or self.min_snr_db is not None
        if dynamic and not isinstance(problem, AllocationProblem):
            raise ValueError("min_snr_db and mask_fn need info['problem'] from the env")
        if self.mask_fn is not None:
            c, lv = self.mask_fn(problem)
            K, N, L = channels.shape[0], channels.shape[1], levels.shape[1]
            if c is not None:
                channels &= _as_mask("mask_fn channel mask", c, K, N, "sub-channels")
            if lv is not None:
                levels &= _as_mask("mask_fn level mask", lv, K, L, "power levels")
            _check_rows("mask_fn channel mask", channels, "sub-channel")
            _check_rows("mask_fn level mask", levels, "power level")
        if self.min_snr_db is not None:
            snr_w = problem.gains * (problem.power_levels_w[-1] / problem.noise_w)
            with np.errstate(divide="ignore"):
                snr_db = 10.0 * np.log10(snr_w)
            ok = channels & (snr_db >= self.min_snr_db)
            # a device in a deep fade everywhere keeps its best allowed sub-channel
            best = np.argmax(np.where(channels, snr_db, -np.inf), axis=1)
            ok[np.arange(len(best)), best] = True
            channels = ok
        self.channel_mask, self.level_mask = channels, levels
        info["action_mask"] = self.action_masks()
