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

Randomness
----------
:class:`EavesdropperChannel` draws only from the generator given to its
:meth:`~EavesdropperChannel.reset`: a fixed number of values per reset, and the fading
innovations of :data:`~qfl_gym.wireless.channel.NOISE_BLOCK_STEPS` slots at a time (one
generator call; the Gauss-Markov recursion over a block is one matrix product, as in
the legitimate channel), independent of actions. The environments derive that generator with
``np_random.spawn(1)``, which consumes nothing from ``np_random``: the legitimate
channel's realizations are the same with and without eavesdroppers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from qfl_gym.wireless import noma
from qfl_gym.wireless.channel import NOISE_BLOCK_STEPS, drop_devices
from qfl_gym.wireless.config import EAVESDROPPER_DECODING, UplinkConfig
from qfl_gym.wireless.propagation import noise_power_w, pathloss_db

_TWO_PI = 2.0 * np.pi


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

    Parameters
    ----------
    gains : ndarray, shape (E, K, N)
        Device-to-eavesdropper power gains ``g^e_kn`` (unitless).
    channels : ndarray of int, shape (..., K)
        Sub-channel of each device (leading axes: a batch of assignments).
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
    """
    if decoding not in EAVESDROPPER_DECODING:
        raise ValueError(
            f"unknown eavesdropper_decoding {decoding!r}; valid: "
            f"{', '.join(map(repr, EAVESDROPPER_DECODING))}"
        )
    channels = np.asarray(channels)
    E, K, N = gains.shape
    if channels.ndim == 1:
        # one assignment (the environments' hot path): the E eavesdroppers side by side
        # as E*K devices on E*N disjoint sub-channels, one flat call
        s = gains.reshape(E, K * N)[:, _row_offsets(K, N) + channels] * power_w
        if decoding == "genie":
            return s / noise_w
        ch = channels + _eve_offsets(E, N)  # (E, K): eavesdropper e's sub-channel n -> e N + n
        if decoding == "sic":
            return noma.sic_sinr(s.ravel(), ch.ravel(), noise_w, sic_residual).reshape(E, K)
        load = noma.subchannel_load_w(s.ravel(), ch.ravel(), E * N)
        return s / (np.maximum(load.take(ch) - s, 0.0) + noise_w)
    # a batch (..., K): g[..., e, k] = gains[e, k, channels[..., k]]
    g = np.moveaxis(gains[:, np.arange(K), channels], 0, -2)
    s = np.asarray(power_w, dtype=float)[..., None, :] * g
    if decoding == "genie":
        return s / noise_w
    ch = np.broadcast_to(channels[..., None, :], s.shape)
    if decoding == "sic":
        return noma.sic_sinr(s, ch, noise_w, sic_residual)
    load = noma.subchannel_load_w(s, ch, N)
    others = np.maximum(np.take_along_axis(load, ch, axis=-1) - s, 0.0)
    return s / (others + noise_w)


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
    return np.maximum(rate_bps - np.max(eavesdropper_rate_bps, axis=-2), 0.0)


class EavesdropperChannel:
    """Channels from K devices to E passive eavesdroppers, slot by slot.

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
    """

    def __init__(self, config: UplinkConfig) -> None:
        if not isinstance(config, UplinkConfig):
            raise ValueError(f"config must be an UplinkConfig, got {type(config).__name__}")
        if not config.num_eavesdroppers:
            raise ValueError(
                "EavesdropperChannel needs eavesdroppers: set num_eavesdroppers >= 1 or "
                "eavesdropper_positions_m"
            )
        self.config = cfg = config
        self.shape = (cfg.num_eavesdroppers, cfg.num_devices, cfg.num_subchannels)
        self.rho = rho = cfg.fading_correlation
        self._innovation_std = float(np.sqrt(0.5 * (1.0 - rho**2)))
        t = np.arange(NOISE_BLOCK_STEPS)
        lag = t[:, None] - t[None, :]
        with np.errstate(divide="ignore"):  # rho = 0: 0**0 = 1 on the diagonal
            self._gm_inputs = np.where(lag >= 0, rho ** np.maximum(lag, 0), 0.0)
        self._gm_state = rho ** (t + 1.0)
        if cfg.fading == "rician":
            k_lin = 10.0 ** (cfg.rician_k_db / 10.0)
            self._los_amp = float(np.sqrt(k_lin / (k_lin + 1.0)))
            self._diffuse_amp = float(np.sqrt(1.0 / (k_lin + 1.0)))
        else:
            self._los_amp, self._diffuse_amp = 0.0, 1.0
        self.noise_w = eavesdropper_noise_w(cfg)
        self._fixed = (
            None
            if cfg.eavesdropper_positions_m is None
            else np.array(cfg.eavesdropper_positions_m, dtype=float)
        )
        self.gains = np.zeros(self.shape)

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
        cfg = self.config
        E, K, N = self.shape
        self._rng = rng
        if self._fixed is None:
            self.positions_m = drop_devices(rng, E, cfg.min_distance_m, cfg.cell_radius_m)
        else:
            self.positions_m = self._fixed.copy()
        self.shadowing_db = cfg.shadowing_std_db * rng.standard_normal((E, K))
        self._h = np.sqrt(0.5) * rng.standard_normal((2, E, K, N))
        if self._los_amp:
            phase = _TWO_PI * rng.random((E, K, N))
            self._los = self._los_amp * np.stack([np.cos(phase), np.sin(phase)])
        else:
            self._los = None
        self._update_large_scale(device_positions_m)
        self._power = self._fading_power(self._h)
        self._block = None
        self._pos = 0
        return self._set_gains()

    def step(self, device_positions_m: np.ndarray | None = None) -> np.ndarray:
        """Advance one slot (fading; path loss if devices moved); return gains (E, K, N).

        ``device_positions_m`` (K, 2): the devices' new positions when they move, else
        None.
        """
        if self.rho < 1.0:
            if self._block is None or self._pos == NOISE_BLOCK_STEPS:
                self._next_block()
            self._power = self._block[self._pos]
            self._pos += 1
        if device_positions_m is not None:
            self._update_large_scale(device_positions_m)
        return self._set_gains()

    # ------------------------------------------------------------ evaluation
    def sinr(self, channels: Any, power_w: Any) -> np.ndarray:
        """SINR (..., E, K) of assignments ``channels`` (..., K) at powers ``power_w`` (W)."""
        cfg = self.config
        return eavesdropper_sinr(
            self.gains,
            np.asarray(channels),
            np.asarray(power_w, dtype=float),
            self.noise_w,
            cfg.eavesdropper_decoding,
            cfg.sic_residual,
        )

    def rates(self, channels: Any, power_w: Any) -> np.ndarray:
        """Eavesdropper rates ``r^e_k`` (..., E, K), bit/s."""
        return noma.rates_bps(self.sinr(channels, power_w), self.config.bandwidth_hz)

    def outcome(
        self, channels: np.ndarray, power_w: np.ndarray, rate_bps: np.ndarray
    ) -> dict[str, Any]:
        """Secrecy of one assignment (K,) whose base-station rates are ``rate_bps`` (K,).

        Returns
        -------
        dict
            ``eavesdropper_rate_bps`` (K,, the strongest eavesdropper's rate per
            device), ``secrecy_rate_bps`` (K,, ``[r_k - r_k,eve]^+``) and
            ``secrecy_sum_rate_bps`` (float).
        """
        eve = self.rates(channels, power_w).max(axis=-2)
        secrecy = np.maximum(rate_bps - eve, 0.0)
        return {
            "eavesdropper_rate_bps": eve,
            "secrecy_rate_bps": secrecy,
            "secrecy_sum_rate_bps": float(secrecy.sum()),
        }

    # -------------------------------------------------------------- internals
    def _update_large_scale(self, device_positions_m: np.ndarray) -> None:
        cfg = self.config
        diff = np.asarray(device_positions_m)[None, :, :] - self.positions_m[:, None, :]
        d = np.maximum(np.hypot(diff[..., 0], diff[..., 1]), cfg.min_distance_m)
        self.distance_m = d
        self.pathloss_db = pathloss_db(
            d,
            cfg.pathloss_model,
            intercept_db=cfg.pathloss_intercept_db,
            exponent=cfg.pathloss_exponent,
            carrier_hz=cfg.carrier_hz,
        )
        self._beta = (10.0 ** (-(self.pathloss_db + self.shadowing_db) / 10.0))[..., None]

    def _next_block(self) -> None:
        """Fading power of the next NOISE_BLOCK_STEPS slots (one draw, one product)."""
        B = NOISE_BLOCK_STEPS
        w = self._rng.standard_normal((B, self._h.size))
        w *= self._innovation_std
        # h[t] = rho^(t+1) h[-1] + sum_{i<=t} rho^(t-i) sigma w[i]
        traj = self._gm_inputs @ w
        traj += self._gm_state[:, None] * self._h.reshape(1, -1)
        traj = traj.reshape(B, *self._h.shape)
        self._h = traj[-1].copy()
        self._block = self._fading_power(traj)
        self._pos = 0

    def _fading_power(self, h: np.ndarray) -> np.ndarray:
        """``|h|^2`` (..., E, K, N) of diffuse states (..., 2, E, K, N)."""
        if self._los is not None:
            h = self._los + self._diffuse_amp * h
        return h[..., 0, :, :, :] ** 2 + h[..., 1, :, :, :] ** 2

    def _set_gains(self) -> np.ndarray:
        gains = self._power * self._beta
        gains.flags.writeable = False
        self.gains = gains
        return gains
