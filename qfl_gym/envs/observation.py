"""Observation features shared by the environments (one scaling, documented once).

- Channel state: the SNR device ``k`` would get alone on sub-channel ``n`` at full power,
  in dB, centred and scaled: ``(10 log10(p_max g_kn / noise) - 20) / 20``. Typical
  values lie in [-2, 3]; the SNR is bounded to [-300, 340] dB so the feature lies in
  [-16, 16] and is never NaN or inf.
- Rates: spectral efficiency ``r_k / B`` (bit/s/Hz) divided by 10, capped at 12
  (120 bit/s/Hz, an SINR of 361 dB: only absurd configurations reach it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

SNR_CENTER_DB = 20.0
SNR_SCALE_DB = 20.0
SE_SCALE = 10.0
SNR_FEATURE_BOUND = 16.0
RATE_FEATURE_BOUND = 12.0
_SNR_MIN = 1e-30


def snr_features(gains: np.ndarray, scale: float) -> np.ndarray:
    """Normalized full-power SNR in dB, same shape as ``gains``, in [-16, 16].

    ``scale`` is ``p_max / noise`` (1/W times W), so ``gains * scale`` is the SNR.
    """
    snr_db = np.log10(np.maximum(gains * scale, _SNR_MIN))
    snr_db *= 10.0 / SNR_SCALE_DB
    snr_db -= SNR_CENTER_DB / SNR_SCALE_DB
    return np.minimum(snr_db, SNR_FEATURE_BOUND, out=snr_db)


def snr_feature_fn(config) -> partial:
    """The SNR feature transform of an uplink configuration (for the channels).

    ``snr_features(gains, scale=p_max / noise)`` with ``config.power_levels_w[-1]`` (W) and
    ``config.noise_w`` (W).
    """
    return partial(snr_features, scale=float(config.power_levels_w[-1]) / float(config.noise_w))


def rate_features(rates_bps: np.ndarray, bandwidth_hz: float) -> np.ndarray:
    """Spectral efficiency / 10, same shape as ``rates_bps``."""
    return np.minimum(rates_bps * (1.0 / (bandwidth_hz * SE_SCALE)), RATE_FEATURE_BOUND)


@dataclass(frozen=True)
class Segment:
    """One named block of an observation vector.

    Attributes
    ----------
    name : str
        Key in :meth:`ObservationLayout.split`.
    shape : tuple of int
        Shape of the block; a per-device block has the device axis first.
    low, high : float
        Bounds of every entry (the ``Box`` bounds).
    per_device : bool
        True when axis 0 of ``shape`` is the device axis (e.g. ``(K, N)`` SNRs, ``(K,)``
        rates); False for global features (``()`` or ``(m,)``).
    doc : str
        What the entries mean and how they are scaled.
    """

    name: str
    shape: tuple[int, ...]
    low: float
    high: float
    per_device: bool
    doc: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class ObservationLayout:
    """The named layout of a flat observation: one definition per environment.

    Single and vector envs, wrappers and policies read observations through it
    (``env.unwrapped.observation_layout``): :meth:`split` gives every segment as a view
    with its own shape, :meth:`device_features` the per-device features as a
    ``(..., K, F)`` array (the input of permutation-equivariant policies), and
    :meth:`global_features` the rest.

    Parameters
    ----------
    kind : str
        Name of the environment family (``"channel-power"``, ``"qfl"``): part of
        :attr:`spec`.
    num_devices : int
        K.
    segments : sequence of Segment
        In observation order.
    options : dict of str to int, optional
        Other integers that define the layout (``N``, flags), part of :attr:`spec`.
    """

    def __init__(
        self,
        kind: str,
        num_devices: int,
        segments: list[Segment],
        options: dict[str, int] | None = None,
    ) -> None:
        self.kind = kind
        self.num_devices = int(num_devices)
        self.segments = tuple(segments)
        self.options = dict(options or {})
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique, got {names}")
        self._slices: dict[str, slice] = {}
        start = 0
        for seg in self.segments:
            if seg.per_device and (not seg.shape or seg.shape[0] != self.num_devices):
                raise ValueError(
                    f"per-device segment {seg.name!r} must have the device axis "
                    f"({self.num_devices}) first, got shape {seg.shape}"
                )
            self._slices[seg.name] = slice(start, start + seg.size)
            start += seg.size
        self.size = start
        low, high = self.bounds()
        self._low, self._high = low, high

    # ------------------------------------------------------------ identity
    @property
    def spec(self) -> str:
        """A string that rebuilds this layout with :func:`layout_from_spec`."""
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}:K={self.num_devices}" + (f",{opts}" if opts else "")

    def __repr__(self) -> str:
        return f"ObservationLayout({self.spec!r}, size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObservationLayout) and self.segments == other.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def __reduce__(self):
        return (layout_from_spec, (self.spec,))

    # ------------------------------------------------------------- access
    def slice(self, name: str) -> slice:
        """Index range of segment ``name`` in the flat observation."""
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(
                f"no observation segment {name!r}; segments: {', '.join(self._slices)}"
            ) from None

    def segment(self, name: str) -> Segment:
        """The :class:`Segment` called ``name``."""
        self.slice(name)
        return next(s for s in self.segments if s.name == name)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` float32 arrays of the flat observation."""
        low = np.concatenate([np.full(s.size, s.low) for s in self.segments])
        high = np.concatenate([np.full(s.size, s.high) for s in self.segments])
        return low.astype(np.float32), high.astype(np.float32)

    def space(self):
        """The ``gymnasium.spaces.Box`` of one observation."""
        from gymnasium import spaces

        return spaces.Box(self._low, self._high, dtype=np.float32)

    def new(self, *batch: int) -> np.ndarray:
        """A zeroed float32 observation buffer of shape ``(*batch, size)``."""
        return np.zeros((*batch, self.size), dtype=np.float32)

    def split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Every segment of ``obs`` (..., size) as a view of shape (..., *segment.shape).

        Works for numpy arrays and torch tensors alike.
        """
        self._check(obs)
        lead = tuple(obs.shape[:-1])
        return {
            s.name: obs[..., self._slices[s.name]].reshape(*lead, *s.shape) for s in self.segments
        }

    def device_features(self, obs):
        """Per-device features (..., K, F) of observations (..., size).

        The per-device segments of each device, concatenated in layout order (a ``(K, N)``
        segment gives N features per device, a ``(K,)`` one 1). numpy or torch.
        """
        parts = self.split(obs)
        lead = tuple(obs.shape[:-1])
        K = self.num_devices
        blocks = [
            parts[s.name].reshape(*lead, K, s.size // K) for s in self.segments if s.per_device
        ]
        return _concat(blocks, obs)

    def global_features(self, obs):
        """Features that belong to no single device (..., G). numpy or torch."""
        parts = self.split(obs)
        lead = tuple(obs.shape[:-1])
        blocks = [parts[s.name].reshape(*lead, s.size) for s in self.segments if not s.per_device]
        return _concat(blocks, obs)

    @property
    def device_feature_dim(self) -> int:
        """F of :meth:`device_features`."""
        return sum(s.size // self.num_devices for s in self.segments if s.per_device)

    @property
    def global_feature_dim(self) -> int:
        """G of :meth:`global_features`."""
        return sum(s.size for s in self.segments if not s.per_device)

    def table(self) -> str:
        """The layout as a reStructuredText-style table (index range, name, meaning)."""
        rows = [
            (f"{self._slices[s.name].start}..{self._slices[s.name].stop - 1}", s.name, s.doc)
            for s in self.segments
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)

    def _check(self, obs) -> None:
        if obs.shape[-1] != self.size:
            raise ValueError(
                f"observation has {obs.shape[-1]} entries in its last axis; the layout "
                f"{self.spec!r} has {self.size}"
            )


def _concat(blocks: list, like):
    if not blocks:
        return like[..., :0]
    if isinstance(like, np.ndarray):
        return np.concatenate(blocks, axis=-1)
    import torch

    return torch.cat(blocks, dim=-1)


#: loss features are ``loss / ln(C)`` (1 = a uniform guess), capped at this value
LOSS_FEATURE_BOUND = 16.0


def _channel_segments(K: int, N: int) -> list[Segment]:
    return [
        Segment(
            "snr",
            (K, N),
            -SNR_FEATURE_BOUND,
            SNR_FEATURE_BOUND,
            True,
            "full-power SNR of device k on sub-channel n, (SNR_dB - 20) / 20",
        ),
        Segment(
            "rate",
            (K,),
            0.0,
            RATE_FEATURE_BOUND,
            True,
            "each device's rate in the previous step, r_k / B / 10 (0 after reset)",
        ),
    ]


def channel_power_layout(num_devices: int, num_subchannels: int) -> ObservationLayout:
    """ChannelPower-v0's layout: SNRs (K, N), last rates (K,), elapsed fraction."""
    K, N = int(num_devices), int(num_subchannels)
    segments = [
        *_channel_segments(K, N),
        Segment("time", (1,), 0.0, 1.0, False, "elapsed fraction of the episode, t / horizon"),
    ]
    return ObservationLayout("channel-power", K, segments, {"N": N})


def qfl_layout(
    num_devices: int, num_subchannels: int, wall_time: bool = False
) -> ObservationLayout:
    """QFL-v0's layout: channel segments, losses, staleness, elapsed fraction.

    ``wall_time`` adds a last segment, the simulated time elapsed (full participation).
    """
    K, N = int(num_devices), int(num_subchannels)
    B = LOSS_FEATURE_BOUND
    segments = [
        *_channel_segments(K, N),
        Segment("global_loss", (1,), 0.0, B, False, "global test loss / ln C (1 = uniform guess)"),
        Segment(
            "local_loss",
            (K,),
            0.0,
            B,
            True,
            "each device's latest reported local training loss / ln C",
        ),
        Segment(
            "staleness",
            (K,),
            0.0,
            1.0,
            True,
            "rounds since each device's update last arrived / rounds",
        ),
        Segment("time", (1,), 0.0, 1.0, False, "elapsed fraction of the episode, t / rounds"),
    ]
    if wall_time:
        segments.append(
            Segment(
                "wall_time",
                (1,),
                0.0,
                1.0,
                False,
                "simulated time elapsed / (rounds * max_round_s)",
            )
        )
    return ObservationLayout("qfl", K, segments, {"N": N, "wall_time": int(wall_time)})


_LAYOUTS = {"channel-power": channel_power_layout, "qfl": qfl_layout}


def layout_from_spec(spec: str) -> ObservationLayout:
    """Rebuild a layout from its :attr:`ObservationLayout.spec` (``"qfl:K=8,N=4,wall_time=0"``).

    Raises
    ------
    ValueError
        For an unknown kind or a malformed spec.
    """
    kind, _, rest = str(spec).partition(":")
    if kind not in _LAYOUTS or not rest:
        raise ValueError(
            f"layout spec must look like 'channel-power:K=10,N=4' or 'qfl:K=8,N=4,wall_time=0'; "
            f"got {spec!r} (kinds: {', '.join(_LAYOUTS)})"
        )
    try:
        values = {k: int(v) for k, v in (item.split("=") for item in rest.split(","))}
        K, N = values.pop("K"), values.pop("N")
    except (ValueError, KeyError):
        raise ValueError(f"malformed layout spec {spec!r}: need K=<int>,N=<int>") from None
    if kind == "qfl":
        return qfl_layout(K, N, wall_time=bool(values.pop("wall_time", 0)))
    return channel_power_layout(K, N)
