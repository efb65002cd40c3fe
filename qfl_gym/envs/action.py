"""The joint (sub-channel, power level) action shared by every environment.

Encoding (public contract): a 1-D ``MultiDiscrete`` of length ``2K``; entries
``0..K-1`` are each device's sub-channel (``0..N-1``), entries ``K..2K-1`` each device's
power-level index (``0..L-1``, ascending power). stable-baselines3 supports only 1-D
``MultiDiscrete``, hence the flat layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


class ActionCodec:
    """Encode, decode and validate joint actions for K devices, N sub-channels, L levels."""

    def __init__(self, num_devices: int, num_subchannels: int, num_power_levels: int) -> None:
        self.num_devices = K = int(num_devices)
        self.num_subchannels = int(num_subchannels)
        self.num_power_levels = int(num_power_levels)
        self.nvec = np.array([num_subchannels] * K + [num_power_levels] * K, dtype=np.int64)
        self.shape = (2 * K,)
        self._nvec_u = self.nvec.astype(np.uint64)

    @classmethod
    def for_config(cls, config: Any) -> ActionCodec:
        """The codec of an :class:`~qfl_gym.wireless.config.UplinkConfig` (K, N, L)."""
        return cls(config.num_devices, config.num_subchannels, config.num_power_levels)

    def space(self) -> spaces.MultiDiscrete:
        """The ``MultiDiscrete`` action space."""
        return spaces.MultiDiscrete(self.nvec)

    def encode(self, channels: Any, power_levels: Any) -> np.ndarray:
        """Concatenate per-device sub-channels and power levels into one action."""
        c = np.asarray(channels)
        p = np.asarray(power_levels)
        if c.shape[-1:] != (self.num_devices,) or p.shape != c.shape:
            raise ValueError(
                f"channels and power_levels must have shape (..., {self.num_devices}); "
                f"got {c.shape} and {p.shape}"
            )
        return self.validate(np.concatenate([c, p], axis=-1), batched=c.ndim > 1)

    def decode(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """Split a validated action into ``(channels, power_levels)``, each (K,) int64."""
        a = self.validate(action, batched=np.ndim(action) > 1)
        K = self.num_devices
        return a[..., :K], a[..., K:]

    def validate(self, action: Any, *, batched: bool = False) -> np.ndarray:
        """Return ``action`` as an int64 array, or raise ``ValueError`` naming the entry.

        Integral floats (``2.0``) are accepted; fractional values, booleans, wrong
        shapes and out-of-range entries are not. Nothing is clipped or wrapped.
        """
        a = action if type(action) is np.ndarray else np.asarray(action)
        # fast path: int64 of the right shape; negatives wrap to huge unsigned values
        if (
            a.dtype == np.int64
            and a.shape == self.shape
            and (a.view(np.uint64) < self._nvec_u).all()
        ):
            return a
        return self._validate_slow(a, batched)

    def _validate_slow(self, a: np.ndarray, batched: bool) -> np.ndarray:
        K = self.num_devices
        if a.shape[-1:] != self.shape or (a.ndim != 1 and not batched):
            raise ValueError(
                f"action must have shape ({2 * K},) = (2K,) for K={K} devices "
                f"(K sub-channels then K power levels); got shape {a.shape}"
            )
        if a.dtype.kind == "b" or a.dtype.kind not in "iuf":
            raise ValueError(f"action must hold integers, got dtype {a.dtype}")
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a) | (a != np.round(a))
            if bad.any():
                i = np.argwhere(bad)[0]
                value = a[tuple(i)].item()
                raise ValueError(
                    f"action{_index(i)} = {value!r} is not an integer "
                    f"({self._describe(int(i[-1]))})"
                )
            a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.nvec)
        if bad.any():
            i = np.argwhere(bad)[0]
            j = int(i[-1])
            raise ValueError(
                f"action{_index(i)} = {a[tuple(i)]} is out of range: {self._describe(j)} "
                f"must be in 0..{self.nvec[j] - 1}"
            )
        return a.astype(np.int64, copy=False)

    def _describe(self, j: int) -> str:
        K = self.num_devices
        if j < K:
            return f"device {j}'s sub-channel"
        return f"device {j - K}'s power level"


def _index(idx: np.ndarray) -> str:
    """``[i][j]`` text of an array index, for error messages."""
    return "".join(f"[{int(x)}]" for x in idx)
