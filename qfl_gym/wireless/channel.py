r"""Time-varying channel gains of K devices on N sub-channels.

Model
-----
- **Placement**: devices uniform by area in the annulus ``min_distance_m <= d <=
  cell_radius_m`` around the base station at the origin.
- **Large scale**: ``beta_k = 10 ** (-(PL(d_k) + X_k) / 10)`` with path loss ``PL``
  (:mod:`qfl_gym.wireless.propagation`) and log-normal shadowing ``X_k ~ N(0, sigma^2)``
  dB, common to all sub-channels of a device.
- **Small scale**: independent per (device, sub-channel), unit mean power.
  Rayleigh: ``h ~ CN(0, 1)``; Rician with K-factor ``K_R``:
  ``h = sqrt(K_R/(K_R+1)) e^{j phi} + sqrt(1/(K_R+1)) h_d``, fixed LOS phase ``phi``
  per episode and diffuse part ``h_d ~ CN(0, 1)``.
- **Time correlation**: first-order Gauss-Markov on the diffuse part,
  ``h_d[t+1] = rho h_d[t] + sqrt(1 - rho^2) w[t]``, ``w ~ CN(0, 1)``,
  ``rho = J0(2 pi f_d T_slot)`` (Jakes).
- **Mobility** (optional): each device moves ``speed * T_slot`` per slot along a
  heading that random-walks (std 0.2 rad per slot) and turns back at the cell edges;
  the shadowing follows with Gudmundson's correlation
  ``X[t+1] = a X[t] + sqrt(1 - a^2) sigma z``, ``a = exp(-dx / d_corr)``.

The gain of device ``k`` on sub-channel ``n`` is ``g_kn = beta_k |h_kn|^2``.

Randomness: every draw comes from the ``numpy.random.Generator`` passed to
:meth:`UplinkChannel.reset`. Per-slot innovations are drawn in blocks of
:data:`NOISE_BLOCK_STEPS` slots (one generator call per block), which is what makes a
step cheap; a batched implementation reproduces a single channel by drawing the same
blocks from each environment's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qfl_gym.wireless.config import UplinkConfig
from qfl_gym.wireless.propagation import pathloss_db

NOISE_BLOCK_STEPS = 64
HEADING_STD_RAD = 0.2


def drop_devices(
    rng: np.random.Generator, num_devices: int, min_distance_m: float, radius_m: float
) -> np.ndarray:
    """Positions (K, 2) in m, uniform by area in the annulus around the origin."""
    u = rng.random(num_devices)
    r = np.sqrt(min_distance_m**2 + u * (radius_m**2 - min_distance_m**2))
    phi = rng.uniform(0.0, 2.0 * np.pi, num_devices)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)


class UplinkChannel:
    """Channel state of one cell and its evolution slot by slot.

    Parameters
    ----------
    config : UplinkConfig
        Scenario; read for geometry, propagation, fading and mobility.
    features : callable, optional
        ``features(gains) -> ndarray`` applied to the gains of every slot (to a whole
        block of slots at once when devices do not move); the result of the current
        slot is :attr:`features`. Environments pass their observation transform.

    Attributes
    ----------
    gains : ndarray, shape (K, N)
        Current linear power gains ``g_kn`` (read-only; a fresh array every slot).
    features : ndarray or None
        ``features(gains)`` of the current slot.
    positions_m : ndarray, shape (K, 2)
        Device positions, m (base station at the origin).
    distance_m, pathloss_db, shadowing_db : ndarray, shape (K,)
        Current distance (m), path loss (dB) and shadowing (dB) of each device.

    Notes
    -----
    Slots are produced in blocks of :data:`NOISE_BLOCK_STEPS`: one generator call
    draws the innovations of the whole block, the Gauss-Markov recursion runs over it,
    and (without mobility) gains and features are computed for the whole block in a
    few vectorized operations. A step is then a view into the block.
    """

    def __init__(
        self, config: UplinkConfig, features: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.config = config
        K, N = config.num_devices, config.num_subchannels
        self._shape = (K, N)
        self._feature_fn = features
        self._rho = config.fading_correlation
        self._innovation_std = float(np.sqrt(0.5 * (1.0 - self._rho**2)))
        if config.fading == "rician":
            k_lin = 10.0 ** (config.rician_k_db / 10.0)
            self._los_amp = float(np.sqrt(k_lin / (k_lin + 1.0)))
            self._diffuse_amp = float(np.sqrt(1.0 / (k_lin + 1.0)))
        else:
            self._los_amp = 0.0
            self._diffuse_amp = 1.0
        self._static_fading = self._rho == 1.0
        self._mobile = bool(config.mobility) and config.speed_mps > 0.0
        self._fading_draws = 0 if self._static_fading else 2 * K * N
        self._per_step = self._fading_draws + (2 * K if self._mobile else 0)
        t = np.arange(NOISE_BLOCK_STEPS)
        lag = t[:, None] - t[None, :]
        with np.errstate(divide="ignore"):  # rho = 0: 0**0 = 1 on the diagonal
            powers = np.where(lag >= 0, self._rho ** np.maximum(lag, 0), 0.0)
        self._gm_inputs = powers * self._innovation_std  # (B, B) lower triangular
        self._gm_state = self._rho ** (t + 1.0)  # (B,)
        self._pos = NOISE_BLOCK_STEPS
        self.gains = np.zeros(self._shape)
        self.features = None

    # ----------------------------------------------------------------- state
    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Drop devices, draw shadowing and fading; return the gains (K, N)."""
        cfg = self.config
        K, N = self._shape
        self._rng = rng
        self.positions_m = drop_devices(rng, K, cfg.min_distance_m, cfg.cell_radius_m)
        self.shadowing_db = rng.normal(0.0, cfg.shadowing_std_db, K)
        self.heading_rad = rng.uniform(0.0, 2.0 * np.pi, K)
        # diffuse part as real/imag planes, each N(0, 1/2): shape (2, K, N)
        self._h = rng.standard_normal((2, K, N)) * np.sqrt(0.5)
        if self._los_amp:
            phase = rng.uniform(0.0, 2.0 * np.pi, (K, N))
            self._los = self._los_amp * np.stack([np.cos(phase), np.sin(phase)])
        self._update_large_scale()
        self._pos = NOISE_BLOCK_STEPS
        self._set_slot(self._fading_power(self._h[None])[0] * self._beta_col, None)
        return self.gains

    def step(self) -> np.ndarray:
        """Advance one slot; return the new gains (K, N)."""
        if not self._per_step:  # static fading, fixed devices: nothing changes
            return self.gains
        if self._pos == NOISE_BLOCK_STEPS:
            self._next_block()
        i = self._pos
        self._pos += 1
        if self._mobile:
            self._move(self._mobility_draws[i])
            self._set_slot(self._power_block[i] * self._beta_col, None)
        else:
            features = None if self._feature_block is None else self._feature_block[i]
            self._set_slot(self._gain_block[i], features)
        return self.gains

    # -------------------------------------------------------------- internals
    def _next_block(self) -> None:
        B, K = NOISE_BLOCK_STEPS, self._shape[0]
        z = self._rng.standard_normal((B, self._per_step))
        if self._static_fading:
            power = np.broadcast_to(self._fading_power(self._h[None]), (B, *self._shape))
        else:
            w = z[:, : self._fading_draws]
            # h[t] = rho^(t+1) h[-1] + sum_{i<=t} rho^(t-i) sigma w[i]: the Gauss-Markov
            # recursion over the whole block as one matrix product
            traj = self._gm_inputs @ w
            traj += self._gm_state[:, None] * self._h.reshape(1, -1)
            w = traj.reshape(B, *self._h.shape)
            self._h = w[-1].copy()
            power = self._fading_power(w)
        if self._mobile:
            self._mobility_draws = z[:, self._fading_draws :].reshape(B, 2 * K)
            self._power_block = power
        else:
            gains = power * self._beta_col
            gains.flags.writeable = False
            self._gain_block = gains
            self._feature_block = self._feature_fn(gains) if self._feature_fn else None
        self._pos = 0

    def _fading_power(self, h: np.ndarray) -> np.ndarray:
        """``|h|^2`` of fading states shaped (..., 2, K, N) (real, imag planes)."""
        if self._los_amp:
            h = self._los + self._diffuse_amp * h
        sq = np.square(h)
        return sq[..., 0, :, :] + sq[..., 1, :, :]

    def _set_slot(self, gains: np.ndarray, features: np.ndarray | None) -> None:
        if features is None:
            gains.flags.writeable = False
            if self._feature_fn is not None:
                features = self._feature_fn(gains)
        self.gains = gains
        self.features = features

    def _update_large_scale(self) -> None:
        cfg = self.config
        d = np.maximum(np.hypot(self.positions_m[:, 0], self.positions_m[:, 1]), cfg.min_distance_m)
        self.distance_m = d
        pl = pathloss_db(
            d,
            cfg.pathloss_model,
            intercept_db=cfg.pathloss_intercept_db,
            exponent=cfg.pathloss_exponent,
            carrier_hz=cfg.carrier_hz,
        )
        self.pathloss_db = pl
        self._beta_col = (10.0 ** (-(pl + self.shadowing_db) / 10.0))[:, None]

    def _move(self, z: np.ndarray) -> None:
        cfg = self.config
        K = self._shape[0]
        step_m = cfg.speed_mps * cfg.slot_s
        self.heading_rad = self.heading_rad + HEADING_STD_RAD * z[:K]
        delta = step_m * np.stack([np.cos(self.heading_rad), np.sin(self.heading_rad)], axis=-1)
        new = self.positions_m + delta
        r = np.hypot(new[:, 0], new[:, 1])
        outside = (r > cfg.cell_radius_m) | (r < cfg.min_distance_m)
        # devices that would leave the annulus stay put and turn around
        new[outside] = self.positions_m[outside]
        self.heading_rad[outside] += np.pi
        self.positions_m = new
        a = np.exp(-step_m / cfg.shadowing_decorrelation_m)
        self.shadowing_db = a * self.shadowing_db + np.sqrt(1.0 - a * a) * (
            cfg.shadowing_std_db * z[K:]
        )
        self._update_large_scale()
