r"""Passive eavesdroppers on the uplink and the devices' secrecy rates.

Model
-----
``E`` passive eavesdroppers listen to the uplink; they never transmit, and the devices
know neither their instantaneous channels nor (for randomly dropped ones) their
positions. Eavesdropper :math:`e` at position :math:`q_e` (m, base station at the
origin) receives device :math:`k` on sub-channel :math:`n` with power gain

.. math::

    g^e_{kn} = \beta_{ek} |h^e_{kn}|^2, \qquad
    \beta_{ek} = 10^{-(\mathrm{PL}(d_{ek}) + X_{ek})/10}, \qquad
    d_{ek} = \max(\lVert x_k - q_e \rVert, d_{\min}),

- the scenario's path-loss model ``PL`` (:func:`~qfl_gym.wireless.propagation.pathloss_db`)
  at the device-eavesdropper distance, clamped at ``min_distance_m`` like the
  base-station links (a stated simplification: the same model for every receiver);
- its own log-normal shadowing :math:`X_{ek} \sim \mathcal{N}(0, \sigma^2)` dB
  (``shadowing_std_db``), independent per (eavesdropper, device), fixed over an episode
  (also with mobility: the devices' path loss to the eavesdroppers follows their
  movement, the shadowing does not);
- its own small-scale fading :math:`h^e_{kn}`, independent of the legitimate links,
  of the same family (Rayleigh, or Rician with ``rician_k_db`` and a LOS phase drawn per
  episode), unit mean power, Gauss-Markov in time with the legitimate channel's Jakes
  coefficient :math:`\rho` (the Doppler comes from the moving devices).

**Decoding.** With transmit powers :math:`p_k` and sub-channels :math:`c_k`, the
eavesdropper receives :math:`s^e_k = p_k g^e_{k c_k}` (W) over noise
:math:`\sigma_e^2 = N_0 + \mathrm{NF}_e + 10\log_{10} B` (``eavesdropper_noise_figure_db``,
9 dB: a UE-class receiver, 3GPP TR 36.814). ``eavesdropper_decoding`` says how it
decodes device :math:`k`:

- ``"sic"`` (default): the base station's receiver at the eavesdropper's position:
  SIC on each sub-channel in descending order of *its* received powers, with the
  scenario's residual :math:`\varepsilon` (the SINR of :func:`~qfl_gym.wireless.noma.sic_sinr`);
- ``"interference"``: no SIC, the other devices on the sub-channel are noise,
  :math:`\gamma^e_k = s^e_k / (\sum_{j \ne k, c_j = c_k} s^e_j + \sigma_e^2)`;
- ``"genie"``: every other signal cancelled, :math:`\gamma^e_k = s^e_k / \sigma_e^2`:
  the eavesdropper's best case, a worst-case (conservative) secrecy rate.

Its rate is :math:`r^e_k = B \log_2(1 + \gamma^e_k)`. Eavesdroppers do not collude, so
the strongest one counts, :math:`r_{k,\mathrm{eve}} = \max_e r^e_k`, and the **secrecy
rate** of device :math:`k` (Gaussian wiretap channel, Leung-Yan-Cheong and Hellman,
IEEE Trans. IT 1978; per fading realization, Bloch et al., IEEE Trans. IT 2008) is

.. math::

    r^{s}_k = [\, r_k - r_{k,\mathrm{eve}} \,]^+ \quad \text{bit/s},

with :math:`r_k` the device's rate at the base station (:mod:`qfl_gym.wireless.noma`).
It is finite and non-negative for any assignment: every SINR has a positive noise
floor in the denominator.

Implementation
--------------
:class:`EavesdropperChannelBatch` holds the eavesdroppers of ``n`` independent cells
(one per environment) and computes their gains and secrecy outcomes with array
operations over a leading cell axis; :class:`EavesdropperChannel` is its ``n = 1`` case
with one cell's shapes. The physics (path loss and shadowing to any receiver, Rician
amplitudes, the LOS component, ``|h|^2``, the Gauss-Markov recursion) is
:class:`~qfl_gym.wireless.channel.ChannelModel`'s, shared with the legitimate channel.
Loops over cells remain only to draw from each cell's generator; the arithmetic runs
over groups of cells sized to stay in cache (the result does not depend on the grouping).

Randomness
----------
Each cell draws only from its own generator, given to ``reset`` (the environments
derive it with ``np_random.spawn(1)``, which consumes nothing from ``np_random``: the
legitimate channel's realizations are the same with and without eavesdroppers), and
independently of actions. Per cell, in this order:

- **reset**: ``rng.random(2 E)`` (the eavesdroppers' radius then angle uniforms;
  skipped with fixed ``eavesdropper_positions_m``), ``rng.standard_normal((E, K))``
  (shadowing, times ``shadowing_std_db``), ``rng.standard_normal((2, E, K, N))``
  (initial diffuse fading, real then imaginary plane, times ``sqrt(1/2)``) and, for
  Rician fading, ``rng.random((E, K, N))`` (LOS phases, times ``2 pi``);
- **step**: on a cell's first step after a reset and then every
  :data:`~qfl_gym.wireless.channel.NOISE_BLOCK_STEPS` slots,
  ``rng.standard_normal((NOISE_BLOCK_STEPS, 2 E K N))``: the innovations of that many
  slots (row ``t`` = slot ``t``, columns the (plane, e, k, n) states row-major), times
  the innovation std; the recursion over the block is one matrix product. Nothing
  with static fading (``rho = 1``).

A batch therefore reproduces ``n`` single channels reset with the same generators bit
for bit, through partial resets and skipped cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from qfl_gym.validation import check_int
from qfl_gym.wireless import noma
from qfl_gym.wireless.channel import NOISE_BLOCK_STEPS, ChannelModel, annulus_positions
from qfl_gym.wireless.config import EAVESDROPPER_DECODING, UplinkConfig
from qfl_gym.wireless.problem import ProblemConstants
from qfl_gym.wireless.propagation import noise_power_w

# cells whose innovation block is drawn and transformed together (bounds the
# temporaries to about this many float64 values)
_DRAW_CHUNK_VALUES = 1 << 16
# rows of a batched SIC evaluation whose decoding-order matrices are built together
_SIC_GROUP_VALUES = 1 << 19


def eavesdropper_noise_w(config: UplinkConfig) -> float:
    """Noise power at an eavesdropper over one sub-channel, W."""
    return noise_power_w(
        config.noise_psd_dbm_hz, config.eavesdropper_noise_figure_db, config.bandwidth_hz
    )


def eavesdropper_sinr(
    gains: np.ndarray,
    channels: np.ndarray,
    power_w: np.ndarray,
    noise_w: float,
    decoding: str = "sic",
    sic_residual: float = 0.0,
) -> np.ndarray:
    """Linear SINR of every device at every eavesdropper.

    Leading axes of ``gains`` (environments) and of ``channels`` / ``power_w``
    (environments, or a batch of assignments for one realization) broadcast.

    Parameters
    ----------
    gains : ndarray, shape (..., E, K, N)
        Device-to-eavesdropper power gains ``g^e_kn`` (unitless).
    channels : ndarray of int, shape (..., K)
        Sub-channel of each device.
    power_w : ndarray, shape (..., K)
        Transmit power of each device, W.
    noise_w : float
        Eavesdropper noise power per sub-channel, W (> 0).
    decoding : {"sic", "interference", "genie"}
        How the eavesdropper decodes (module docstring).
    sic_residual : float
        Imperfect-SIC residual ``eps`` for ``decoding="sic"``.

    Returns
    -------
    ndarray, shape (..., E, K)
        The broadcast leading axes, then eavesdropper and device.

    Notes
    -----
    Per realization the E eavesdroppers are evaluated side by side as ``E K`` devices
    on ``E N`` disjoint sub-channels (eavesdropper ``e``'s sub-channel ``n`` is
    ``e N + n``): one NOMA evaluation per row, the same arithmetic for one environment
    and for a batch, so a batch row equals the single evaluation bit for bit.
    """
    if decoding not in EAVESDROPPER_DECODING:
        raise ValueError(
            f"unknown eavesdropper_decoding {decoding!r}; valid: "
            f"{', '.join(map(repr, EAVESDROPPER_DECODING))}"
        )
    channels = np.asarray(channels)
    E, K, N = gains.shape[-3:]
    if gains.ndim == 3 and channels.ndim == 1:
        # one realization, one assignment (the single environments' hot path)
        s = gains.reshape(E, K * N)[:, _row_offsets(K, N) + channels] * power_w
        if decoding == "genie":
            return s / noise_w
        ch = (channels + _eve_offsets(E, N)).ravel()
        if decoding == "sic":
            return noma.sic_sinr(s.ravel(), ch, noise_w, sic_residual).reshape(E, K)
        load = noma.subchannel_load_w(s.ravel(), ch, E * N)
        return s / (np.maximum(load.take(ch).reshape(E, K) - s, 0.0) + noise_w)
    # leading axes: g[..., e, k] = gains[..., e, k, channels[..., k]]
    flat = gains.reshape(*gains.shape[:-2], K * N)  # (..., E, K N)
    idx = (_row_offsets(K, N) + channels)[..., None, :]  # (..., 1, K)
    nd = max(flat.ndim, idx.ndim)
    flat = flat.reshape((1,) * (nd - flat.ndim) + flat.shape)
    idx = idx.reshape((1,) * (nd - idx.ndim) + idx.shape)
    s = np.take_along_axis(flat, idx, axis=-1) * np.asarray(power_w)[..., None, :]
    if decoding == "genie":
        return s / noise_w
    lead = s.shape[:-2]
    ch = channels[..., None, :] + _eve_offsets(E, N)  # (..., E, K)
    if ch.shape != s.shape:
        ch = np.broadcast_to(ch, s.shape)
    s_flat = s.reshape(*lead, E * K)
    ch_flat = ch.reshape(*lead, E * K)
    if decoding == "sic":
        return _sic_rows(s_flat, ch_flat, noise_w, sic_residual).reshape(s.shape)
    load = noma.subchannel_load_w(s_flat, ch_flat, E * N)
    own = np.take_along_axis(load, ch_flat, axis=-1).reshape(s.shape)
    return s / (np.maximum(own - s, 0.0) + noise_w)


def _sic_rows(
    received_w: np.ndarray, channels: np.ndarray, noise_w: float, sic_residual: float
) -> np.ndarray:
    """:func:`~qfl_gym.wireless.noma.sic_sinr` of rows (..., M), a group of rows at a time.

    Each row builds an ``M x M`` decoding-order matrix; groups of rows whose matrices
    total about ``_SIC_GROUP_VALUES`` values stay in cache (rows are independent, so the
    result does not depend on the grouping).
    """
    M = received_w.shape[-1]
    s = received_w.reshape(-1, M)
    ch = channels.reshape(-1, M)
    rows = max(1, _SIC_GROUP_VALUES // (M * M))
    if len(s) <= rows:
        return noma.sic_sinr(s, ch, noise_w, sic_residual).reshape(received_w.shape)
    out = np.empty(s.shape)
    for a in range(0, len(s), rows):
        out[a : a + rows] = noma.sic_sinr(s[a : a + rows], ch[a : a + rows], noise_w, sic_residual)
    return out.reshape(received_w.shape)


@lru_cache(maxsize=64)
def _row_offsets(num_devices: int, num_subchannels: int) -> np.ndarray:
    out = np.arange(num_devices) * num_subchannels
    out.flags.writeable = False
    return out


@lru_cache(maxsize=64)
def _eve_offsets(num_eavesdroppers: int, num_subchannels: int) -> np.ndarray:
    out = (np.arange(num_eavesdroppers) * num_subchannels)[:, None]
    out.flags.writeable = False
    return out


def secrecy_rates_bps(rate_bps: np.ndarray, eavesdropper_rate_bps: np.ndarray) -> np.ndarray:
    """``[r_k - max_e r^e_k]^+`` in bit/s, shape of ``rate_bps`` (..., K).

    ``eavesdropper_rate_bps`` has shape (..., E, K): the strongest eavesdropper counts.
    """
    return _wiretap_rate_bps(rate_bps, np.max(eavesdropper_rate_bps, axis=-2))


def _wiretap_rate_bps(rate_bps: np.ndarray, strongest_bps: np.ndarray) -> np.ndarray:
    """``[r_k - r_k,eve]^+``, bit/s, against the strongest eavesdropper's rates."""
    return np.maximum(rate_bps - strongest_bps, 0.0)


def secrecy_outcome(
    config: UplinkConfig,
    gains: np.ndarray,
    channels: np.ndarray,
    power_w: np.ndarray,
    rate_bps: np.ndarray,
    noise_w: float | None = None,
) -> dict[str, Any]:
    """Secrecy of assignments against eavesdroppers with gains ``gains``.

    Parameters
    ----------
    config : UplinkConfig
        Scenario (eavesdropper receiver, decoding, SIC residual, bandwidth).
    gains : ndarray, shape (..., E, K, N)
        Device-to-eavesdropper power gains.
    channels, power_w, rate_bps : ndarray, shape (..., K)
        Sub-channels, transmit powers (W) and base-station rates (bit/s).
    noise_w : float, optional
        Eavesdropper noise power, W (default: :func:`eavesdropper_noise_w`).

    Returns
    -------
    dict
        ``eavesdropper_rate_bps`` (..., K; the strongest eavesdropper's rate per
        device, bit/s), ``secrecy_rate_bps`` (..., K; ``[r_k - r_k,eve]^+``, bit/s) and
        ``secrecy_sum_rate_bps`` (shape (...), a float for one assignment; bit/s).
    """
    sinr = eavesdropper_sinr(
        gains,
        channels,
        power_w,
        eavesdropper_noise_w(config) if noise_w is None else noise_w,
        config.eavesdropper_decoding,
        config.sic_residual,
    )
    eve = noma.rates_bps(sinr, config.bandwidth_hz).max(axis=-2)
    secrecy = _wiretap_rate_bps(rate_bps, eve)
    return {
        "eavesdropper_rate_bps": eve,
        "secrecy_rate_bps": secrecy,
        "secrecy_sum_rate_bps": (
            float(secrecy.sum()) if secrecy.ndim == 1 else secrecy.sum(axis=-1)
        ),
    }


def _check_config(config: Any) -> UplinkConfig:
    if not isinstance(config, UplinkConfig):
        raise ValueError(f"config must be an UplinkConfig, got {type(config).__name__}")
    if not config.num_eavesdroppers:
        raise ValueError(
            "EavesdropperChannel needs eavesdroppers: set num_eavesdroppers >= 1 or "
            "eavesdropper_positions_m"
        )
    return config


class _AtCurrentGains:
    """Evaluation of assignments at an eavesdropper channel's current ``gains``.

    Shared by :class:`EavesdropperChannelBatch` (gains (n, E, K, N), assignments with
    the cell axis) and :class:`EavesdropperChannel` (gains (E, K, N)).
    """

    config: UplinkConfig
    noise_w: float
    gains: np.ndarray

    def sinr(self, channels: Any, power_w: Any) -> np.ndarray:
        """SINR (..., E, K) of assignments ``channels`` (..., K) at powers ``power_w`` (W).

        Leading axes as in :func:`eavesdropper_sinr`: the batch's cell axis, or a batch
        of assignments for a single channel.
        """
        cfg = self.config
        return eavesdropper_sinr(
            self.gains,
            channels,
            power_w,
            self.noise_w,
            cfg.eavesdropper_decoding,
            cfg.sic_residual,
        )

    def rates(self, channels: Any, power_w: Any) -> np.ndarray:
        """Eavesdropper rates ``r^e_k`` (..., E, K), bit/s."""
        return noma.rates_bps(self.sinr(channels, power_w), self.config.bandwidth_hz)

    def _secrecy(
        self, gains: np.ndarray, channels: Any, power_w: Any, rate_bps: Any
    ) -> dict[str, Any]:
        return secrecy_outcome(self.config, gains, channels, power_w, rate_bps, self.noise_w)


class EavesdropperChannelBatch(_AtCurrentGains):
    """Channels from K devices to E passive eavesdroppers in ``n`` cells, slot by slot.

    Parameters
    ----------
    config : UplinkConfig
        The scenario of every cell. Needs ``num_eavesdroppers >= 1`` (or
        ``eavesdropper_positions_m``); read for geometry, propagation, fading and the
        eavesdroppers' receiver.
    num_envs : int
        Number of cells ``n`` (>= 1).

    Attributes
    ----------
    gains : ndarray, shape (n, E, K, N)
        Current power gains ``g^e_kn`` of every cell (read-only; a fresh array every
        slot).
    positions_m : ndarray, shape (n, E, 2)
        Eavesdropper positions, m.
    distance_m, pathloss_db, shadowing_db : ndarray, shape (n, E, K)
        Device-eavesdropper distance (m, clamped at ``min_distance_m``), path loss and
        shadowing (dB).
    noise_w : float
        Eavesdropper noise power per sub-channel, W.
    model : ChannelModel
        The physics, shared with the legitimate channel.
    """

    def __init__(self, config: UplinkConfig, num_envs: int) -> None:
        self.config = cfg = _check_config(config)
        self.num_envs = n = check_int("num_envs", num_envs, low=1)
        self.model = ChannelModel(cfg)
        self.shape = E, K, N = (cfg.num_eavesdroppers, cfg.num_devices, cfg.num_subchannels)
        self.noise_w = eavesdropper_noise_w(cfg)
        self._fixed = (
            None
            if cfg.eavesdropper_positions_m is None
            else np.array(cfg.eavesdropper_positions_m, dtype=float)
        )
        self.positions_m = np.zeros((n, E, 2))
        self.shadowing_db = np.zeros((n, E, K))
        self.distance_m = np.zeros((n, E, K))
        self.pathloss_db = np.zeros((n, E, K))
        self._beta = np.zeros((n, E, K, 1))
        self._h = np.zeros((n, 2, E, K, N))  # diffuse fading, (real, imag) planes
        self._los = np.zeros((n, E, 2, K, N)) if self.model.los_amp else None
        self._power = np.zeros((n, E, K, N))  # |h|^2 of the current slot
        # fading power of each cell's current innovation block (None: none drawn yet)
        self._block: np.ndarray | None = None
        # block schedule: one scalar while every cell is at the same slot of its block
        # ("sync": common resets), else one entry per cell; NOISE_BLOCK_STEPS: draw next
        self._sync = True
        self._s_pos = NOISE_BLOCK_STEPS
        self._pos = np.full(n, NOISE_BLOCK_STEPS, dtype=np.int64)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._all = np.arange(n)
        self.gains = np.zeros((n, E, K, N))
        self.gains.flags.writeable = False

    # ----------------------------------------------------------------- state
    def reset(
        self,
        generators: Sequence[np.random.Generator],
        device_positions_m: np.ndarray,
        indices: np.ndarray | None = None,
    ) -> np.ndarray:
        """New positions (unless fixed), shadowing and fading of cells ``indices``.

        Parameters
        ----------
        generators : sequence of numpy.random.Generator
            ``generators[j]``: the stream of cell ``indices[j]``, kept for its steps.
        device_positions_m : ndarray, shape (n, K, 2)
            Device positions of the legitimate channel of every cell, m (the rows of
            the reset cells are read).
        indices : ndarray of int, optional
            Cells to reset (default: all).

        Returns
        -------
        ndarray, shape (n, E, K, N)
            The gains of every cell.
        """
        cfg, model = self.config, self.model
        n = self.num_envs
        E, K, N = self.shape
        idx = self._all if indices is None else np.asarray(indices, dtype=np.int64).ravel()
        if len(generators) != len(idx):
            raise ValueError(
                f"generators must hold one generator per reset cell ({len(idx)}), "
                f"got {len(generators)}"
            )
        devices = self._device_positions(device_positions_m)
        if len(idx) == 0:
            return self.gains
        g = len(idx)
        u_pos = np.empty((g, 2 * E)) if self._fixed is None else None
        z_shadow = np.empty((g, E, K))
        z_fading = np.empty((g, 2, E, K, N))
        u_phase = np.empty((g, E, K, N)) if model.los_amp else None
        for j, (i, rng) in enumerate(zip(idx.tolist(), generators, strict=True)):
            self._rngs[i] = rng
            if u_pos is not None:
                rng.random(out=u_pos[j])
            rng.standard_normal(out=z_shadow[j])
            rng.standard_normal(out=z_fading[j])
            if u_phase is not None:
                rng.random(out=u_phase[j])
        if u_pos is None:
            positions = np.broadcast_to(self._fixed, (g, E, 2)).copy()
        else:
            positions = annulus_positions(
                u_pos[:, :E], u_pos[:, E:], cfg.min_distance_m, cfg.cell_radius_m
            )
        shadowing = cfg.shadowing_std_db * z_shadow
        fading = np.sqrt(0.5) * z_fading
        los = None if u_phase is None else model.los_component(u_phase)
        power = model.fading_power(np.moveaxis(fading, 1, 2), los, fused=False)
        whole = g == n and (indices is None or np.array_equal(idx, self._all))
        if whole:
            self.positions_m, self.shadowing_db = positions, shadowing
            self._h, self._los, self._power = fading, los, power
            self._sync, self._s_pos = True, NOISE_BLOCK_STEPS
            self._set_large_scale(devices)
        else:
            self._desync()
            self.positions_m[idx] = positions
            self.shadowing_db[idx] = shadowing
            self._h[idx] = fading
            if los is not None:
                self._los[idx] = los
            self._power[idx] = power
            self._pos[idx] = NOISE_BLOCK_STEPS
            self._set_large_scale(devices, idx)
        return self._set_gains()

    def step(
        self, device_positions_m: np.ndarray | None = None, skip: np.ndarray | None = None
    ) -> np.ndarray:
        """Advance every cell one slot; return the gains (n, E, K, N).

        Parameters
        ----------
        device_positions_m : ndarray, shape (n, K, 2), optional
            The devices' new positions when they move (path loss follows), else None.
        skip : ndarray of bool, shape (n,), optional
            Cells about to be reset: they draw nothing from their generators and their
            state is left undefined until :meth:`reset`.
        """
        if skip is not None:
            skip = np.asarray(skip, dtype=bool)
            if not skip.any():
                skip = None
            elif skip.all():  # every cell is about to be reset: nothing to compute
                return self.gains
        if not self.model.static_fading:
            if skip is None and self._sync:
                self._fade_sync()
            else:
                self._fade_cells(skip)
        if device_positions_m is not None:
            self._set_large_scale(self._device_positions(device_positions_m))
        return self._set_gains()

    # ------------------------------------------------------------ evaluation
    def outcome(
        self, channels: np.ndarray, power_w: np.ndarray, rate_bps: np.ndarray
    ) -> dict[str, Any]:
        """Secrecy of one assignment per cell at the current gains.

        Parameters
        ----------
        channels, power_w, rate_bps : ndarray, shape (n, K)
            Sub-channels, transmit powers (W) and base-station rates (bit/s).

        Returns
        -------
        dict
            ``eavesdropper_rate_bps`` (n, K), ``secrecy_rate_bps`` (n, K) and
            ``secrecy_sum_rate_bps`` (n,), bit/s (:func:`secrecy_outcome`).
        """
        if self.num_envs == 1:  # one cell: the single-assignment path (the same values)
            one = self._secrecy(
                self.gains[0],
                np.asarray(channels)[0],
                np.asarray(power_w)[0],
                np.asarray(rate_bps)[0],
            )
            return {key: np.asarray(value)[None] for key, value in one.items()}
        return self._secrecy(self.gains, channels, power_w, rate_bps)

    # -------------------------------------------------------------- internals
    def _device_positions(self, device_positions_m: Any) -> np.ndarray:
        devices = np.asarray(device_positions_m, dtype=float)
        want = (self.num_envs, self.shape[1], 2)
        if devices.shape != want:
            raise ValueError(
                f"device_positions_m must have shape (n, K, 2) = {want}, got {devices.shape}"
            )
        return devices

    def _set_large_scale(self, devices: np.ndarray, idx: np.ndarray | None = None) -> None:
        """Distance, path loss and large-scale gain of cells ``idx`` (all if None)."""
        if idx is None:
            self.distance_m, self.pathloss_db, beta = self.model.large_scale(
                devices[:, None], self.shadowing_db, self.positions_m[:, :, None]
            )
            self._beta = beta[..., None]
            return
        d, pl, beta = self.model.large_scale(
            devices[idx, None], self.shadowing_db[idx], self.positions_m[idx, :, None]
        )
        self.distance_m[idx], self.pathloss_db[idx] = d, pl
        self._beta[idx] = beta[..., None]

    def _set_gains(self) -> np.ndarray:
        gains = self._power * self._beta
        gains.flags.writeable = False
        self.gains = gains
        return gains

    def _fade_sync(self) -> None:
        """One slot of every cell, all at the same point of their blocks."""
        if self._s_pos == NOISE_BLOCK_STEPS:
            self._draw_blocks(self._all)
            self._s_pos = 0
        self._power = self._block[:, self._s_pos]
        self._s_pos += 1

    def _fade_cells(self, skip: np.ndarray | None) -> None:
        """One slot of the cells not skipped, each at its own point of its block."""
        self._desync()
        pos = self._pos
        need = pos == NOISE_BLOCK_STEPS
        if skip is not None:
            need &= ~skip
        cells = np.flatnonzero(need)
        if len(cells):
            self._draw_blocks(cells)
            pos[cells] = 0
        # skipped cells read any slot (their result is unused)
        self._power = self._block[self._all, np.minimum(pos, NOISE_BLOCK_STEPS - 1)]
        if skip is None:
            pos += 1
        else:
            pos[~skip] += 1
        if (pos == pos[0]).all():  # the schedules met again: back to the scalar one
            self._sync, self._s_pos = True, int(pos[0])

    def _desync(self) -> None:
        """Leave the common schedule for per-cell tracking."""
        if self._sync:
            self._pos[:] = self._s_pos
            self._sync = False

    def _draw_blocks(self, cells: np.ndarray) -> None:
        """Innovations, fading trajectory and fading power of the next block of ``cells``.

        Each cell draws from its own generator exactly what a single channel draws;
        the recursion and ``|h|^2`` run over groups of cells at once.
        """
        model = self.model
        n, B = self.num_envs, NOISE_BLOCK_STEPS
        E, K, N = self.shape
        M = 2 * E * K * N
        if self._block is None:
            self._block = np.zeros((n, B, E, K, N))
        h = self._h.reshape(n, M)  # a view: _h is contiguous
        chunk = max(1, _DRAW_CHUNK_VALUES // (B * M))
        for a in range(0, len(cells), chunk):
            group = cells[a : a + chunk]
            w = np.empty((len(group), B, M))
            for j, i in enumerate(group.tolist()):
                self._rngs[i].standard_normal(out=w[j])
            w *= model.innovation_std
            traj = model.gauss_markov_block(h[group], w)
            h[group] = traj[:, -1]
            traj = traj.reshape(len(group), B, 2, E, K, N)
            los = None if self._los is None else self._los[group][:, None]
            self._block[group] = model.fading_power(np.moveaxis(traj, 2, 3), los, fused=False)


class EavesdropperChannel(_AtCurrentGains):
    """Channels from K devices to E passive eavesdroppers of one cell, slot by slot.

    The ``n = 1`` case of :class:`EavesdropperChannelBatch` with one cell's shapes.

    Parameters
    ----------
    config : UplinkConfig
        Needs ``num_eavesdroppers >= 1`` (or ``eavesdropper_positions_m``); read for
        geometry, propagation, fading and the eavesdroppers' receiver.

    Attributes
    ----------
    gains : ndarray, shape (E, K, N)
        Current power gains ``g^e_kn`` (read-only; a fresh array every slot).
    positions_m : ndarray, shape (E, 2)
        Eavesdropper positions, m.
    distance_m, pathloss_db, shadowing_db : ndarray, shape (E, K)
        Device-eavesdropper distance (m, clamped at ``min_distance_m``), path loss and
        shadowing (dB).
    noise_w : float
        Eavesdropper noise power per sub-channel, W.
    batch : EavesdropperChannelBatch
        The one-cell batch holding the state.
    """

    def __init__(self, config: UplinkConfig) -> None:
        self.batch = EavesdropperChannelBatch(config, 1)
        self.config = config
        self.model = self.batch.model
        self.shape = self.batch.shape
        self.rho = self.model.rho
        self.noise_w = self.batch.noise_w

    # ----------------------------------------------------------------- state
    def reset(self, rng: np.random.Generator, device_positions_m: np.ndarray) -> np.ndarray:
        """New eavesdropper positions (unless fixed), shadowing and fading; gains (E, K, N).

        Parameters
        ----------
        rng : numpy.random.Generator
            The eavesdroppers' own stream (kept for :meth:`step`).
        device_positions_m : ndarray, shape (K, 2)
            Device positions of the legitimate channel, m.
        """
        return self.batch.reset([rng], np.asarray(device_positions_m)[None])[0]

    def step(self, device_positions_m: np.ndarray | None = None) -> np.ndarray:
        """Advance one slot (fading; path loss if devices moved); return gains (E, K, N).

        ``device_positions_m`` (K, 2): the devices' new positions when they move, else
        None.
        """
        if device_positions_m is None:
            return self.batch.step()[0]
        return self.batch.step(np.asarray(device_positions_m)[None])[0]

    @property
    def gains(self) -> np.ndarray:
        return self.batch.gains[0]

    @property
    def positions_m(self) -> np.ndarray:
        return self.batch.positions_m[0]

    @property
    def distance_m(self) -> np.ndarray:
        return self.batch.distance_m[0]

    @property
    def pathloss_db(self) -> np.ndarray:
        return self.batch.pathloss_db[0]

    @property
    def shadowing_db(self) -> np.ndarray:
        return self.batch.shadowing_db[0]

    # ------------------------------------------------------------ evaluation
    def outcome(
        self, channels: np.ndarray, power_w: np.ndarray, rate_bps: np.ndarray
    ) -> dict[str, Any]:
        """Secrecy of one assignment (K,) whose base-station rates are ``rate_bps`` (K,).

        Returns
        -------
        dict
            ``eavesdropper_rate_bps`` (K,, the strongest eavesdropper's rate per
            device), ``secrecy_rate_bps`` (K,, ``[r_k - r_k,eve]^+``) and
            ``secrecy_sum_rate_bps`` (float), bit/s.
        """
        return self._secrecy(self.gains, channels, power_w, rate_bps)


def secrecy_reward(
    outcome: dict[str, Any], secrecy: dict[str, Any], constants: ProblemConstants
) -> Any:
    """ChannelPower-v0's ``secrecy_reward``: the objective with the secrecy sum rate.

    The allocation objective (:func:`~qfl_gym.wireless.problem.objective_value`, a
    weighted sum rate with its energy and outage penalties) with its sum-rate term
    computed at the secrecy rates ``[r_k - r_k,eve]^+`` instead of the rates; the
    penalties stay those of the transmission (outage: the rate at the base station
    below ``min_rate_bps``).

    Parameters
    ----------
    outcome : dict
        :func:`~qfl_gym.wireless.problem.uplink_outcome` of the step.
    secrecy : dict
        :func:`secrecy_outcome` of the same assignments.
    constants : ProblemConstants
        The problem's constants (a sum-rate objective).
    """
    weight = 1e-6 * constants.rate_weight
    penalties = outcome["reward"] - outcome["sum_rate_bps"] * weight
    return penalties + secrecy["secrecy_sum_rate_bps"] * weight
