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

Randomness
----------
Every draw comes from the ``numpy.random.Generator`` passed to
:meth:`UplinkChannel.reset`, and every draw is a block of **uniforms** from one
generator call; Gaussians are made from them by the Box-Muller transform
(:func:`box_muller`), an exact transform applied to whole arrays:

- ``reset`` draws ``ChannelModel.reset_draws`` float64 uniforms at once (positions,
  shadowing, headings, initial fading, LOS phases, in that order);
- per-slot innovations are drawn in blocks of up to :data:`NOISE_BLOCK_STEPS` slots
  (``rng.random((2, L, pairs), dtype=float32)``: one radius and one angle uniform per
  complex innovation, 24-bit uniforms, so a normal is exact to float32 precision and
  its tails are cut at 5.77 sigma, probability 8e-9). A block never runs past the
  episode: ``L = min(NOISE_BLOCK_STEPS, horizon - slot)`` (64 slots once past it).

:class:`ChannelModel` holds these transforms as functions of the uniforms with any
leading batch axes, so a batched implementation (:mod:`qfl_gym.wireless.channel_batch`)
reproduces single channels by drawing the same uniforms from each environment's
generator and transforming all environments at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from qfl_gym.wireless.config import UplinkConfig
from qfl_gym.wireless.propagation import pathloss_db

NOISE_BLOCK_STEPS = 64
HEADING_STD_RAD = 0.2
_TWO_PI = 2.0 * np.pi


def annulus_positions(
    u_radius: np.ndarray, u_angle: np.ndarray, min_distance_m: float, radius_m: float
) -> np.ndarray:
    """Positions (..., K, 2) in m, uniform by area in the annulus, from uniforms (..., K)."""
    r = np.sqrt(min_distance_m**2 + u_radius * (radius_m**2 - min_distance_m**2))
    phi = _TWO_PI * u_angle
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)


def drop_devices(
    rng: np.random.Generator, num_devices: int, min_distance_m: float, radius_m: float
) -> np.ndarray:
    """Positions (K, 2) in m, uniform by area in the annulus around the origin."""
    u = rng.random(2 * num_devices)
    return annulus_positions(u[:num_devices], u[num_devices:], min_distance_m, radius_m)


def box_muller(
    u_radius: np.ndarray,
    u_angle: np.ndarray,
    log_scale: np.ndarray | float = -2.0,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent Gaussians from pairs of uniforms (Box-Muller transform).

    Parameters
    ----------
    u_radius, u_angle : ndarray, same shape and float dtype
        Uniforms in [0, 1) setting the radius and the angle of each pair.
    log_scale : float or ndarray broadcastable to that shape
        ``-2 sigma^2``: ``r = sqrt(log_scale * ln(1 - u_radius))``,
        ``theta = 2 pi u_angle``; ``(r cos theta, r sin theta)`` are two independent
        ``N(0, sigma^2)`` (default: standard normals).
    out : (ndarray, ndarray), optional
        Where to write the cosine and sine components (any float dtype and strides);
        the arithmetic is always done in the uniforms' dtype.

    Returns
    -------
    (ndarray, ndarray)
        The cosine and sine components (a complex Gaussian per pair).
    """
    dtype = u_radius.dtype
    r = np.subtract(dtype.type(1.0), u_radius)  # exact: 1 - u lies in (0, 1]
    np.log(r, out=r)
    r *= np.asarray(log_scale, dtype=dtype)
    np.sqrt(r, out=r)
    theta = u_angle * dtype.type(_TWO_PI)
    if out is None:
        out = (np.empty_like(r), np.empty_like(r))
    trig = np.cos(theta)
    np.multiply(trig, r, out=out[0], dtype=dtype)
    np.sin(theta, out=trig)
    np.multiply(trig, r, out=out[1], dtype=dtype)
    return out


class InitialState(NamedTuple):
    """Channel state right after a reset (leading batch axes allowed)."""

    positions_m: np.ndarray  # (..., K, 2)
    shadowing_db: np.ndarray  # (..., K)
    heading_rad: np.ndarray  # (..., K)
    fading: np.ndarray  # (..., 2, K, N) diffuse part, real/imag planes, each N(0, 1/2)
    los: np.ndarray | None  # (..., 2, K, N) Rician LOS component, or None


class ChannelModel:
    """The physics of one scenario as array functions with optional leading batch axes.

    Shared by :class:`UplinkChannel` (one cell) and the batched channel, so both run
    exactly the same arithmetic on the same uniforms.

    Attributes
    ----------
    rho : float
        Gauss-Markov coefficient between consecutive slots.
    innovation_std : float
        Std of each real/imaginary innovation, ``sqrt((1 - rho^2) / 2)``.
    los_amp, diffuse_amp : float
        Amplitudes of the Rician LOS and diffuse parts, ``sqrt(K_R/(K_R+1))`` and
        ``sqrt(1/(K_R+1))`` (Rayleigh: 0 and 1).
    gm_inputs, gm_state : ndarray, shapes (B, B) and (B,)
        The Gauss-Markov recursion over ``B = NOISE_BLOCK_STEPS`` slots as a matrix:
        ``rho^(t-i)`` for ``i <= t`` (lower triangular) and ``rho^(t+1)``
        (:meth:`gauss_markov_block`).
    fading_pairs, mobility_pairs : int
        Complex innovations per slot for the fading (``K*N``, 0 if static) and for
        mobility (``K``: heading and shadowing normal, 0 without mobility).
    reset_draws : int
        Float64 uniforms one reset consumes.
    """

    def __init__(self, config: UplinkConfig) -> None:
        self.config = cfg = config
        K, N = cfg.num_devices, cfg.num_subchannels
        self.shape = (K, N)
        self.rho = cfg.fading_correlation
        self.innovation_std = float(np.sqrt(0.5 * (1.0 - self.rho**2)))
        if cfg.fading == "rician":
            k_lin = 10.0 ** (cfg.rician_k_db / 10.0)
            self.los_amp = float(np.sqrt(k_lin / (k_lin + 1.0)))
            self.diffuse_amp = float(np.sqrt(1.0 / (k_lin + 1.0)))
        else:
            self.los_amp = 0.0
            self.diffuse_amp = 1.0
        t = np.arange(NOISE_BLOCK_STEPS)
        lag = t[:, None] - t[None, :]
        with np.errstate(divide="ignore"):  # rho = 0: 0**0 = 1 on the diagonal
            self.gm_inputs = np.where(lag >= 0, self.rho ** np.maximum(lag, 0), 0.0)
        self.gm_state = self.rho ** (t + 1.0)
        self.static_fading = self.rho == 1.0
        self.mobile = bool(cfg.mobility) and cfg.speed_mps > 0.0
        self.fading_pairs = 0 if self.static_fading else K * N
        self.mobility_pairs = K if self.mobile else 0
        self.pairs_per_slot = self.fading_pairs + self.mobility_pairs
        self._shadow_pairs = (K + 1) // 2
        los_draws = K * N if self.los_amp else 0
        self.reset_draws = 3 * K + 2 * self._shadow_pairs + 2 * K * N + los_draws
        # -2 sigma^2 per innovation pair: fading scaled to the Gauss-Markov input, mobility unit
        scale = np.full(self.pairs_per_slot, -2.0, dtype=np.float32)
        scale[: self.fading_pairs] = np.float32(-2.0 * self.innovation_std**2)
        self._innovation_log_scale = scale

    # ----------------------------------------------------------------- draws
    def block_length(self, slot: int) -> int:
        """Slots in the innovation block drawn when ``slot`` slots have elapsed."""
        remaining = self.config.horizon - slot
        return min(NOISE_BLOCK_STEPS, remaining) if remaining > 0 else NOISE_BLOCK_STEPS

    def initial_state(self, u: np.ndarray) -> InitialState:
        """The state after a reset from ``u``: (..., reset_draws) float64 uniforms."""
        cfg = self.config
        K, N = self.shape
        KN = K * N
        lead = u.shape[:-1]
        S = self._shadow_pairs
        i = 2 * K
        positions = annulus_positions(
            u[..., :K], u[..., K:i], cfg.min_distance_m, cfg.cell_radius_m
        )
        shadow = np.concatenate(box_muller(u[..., i : i + S], u[..., i + S : i + 2 * S]), -1)
        shadowing = cfg.shadowing_std_db * shadow[..., :K]
        i += 2 * S
        heading = _TWO_PI * u[..., i : i + K]
        i += K
        re, im = box_muller(u[..., i : i + KN], u[..., i + KN : i + 2 * KN], -1.0)
        fading = np.stack([re, im], axis=-2).reshape(*lead, 2, K, N)  # each N(0, 1/2)
        i += 2 * KN
        los = None
        if self.los_amp:
            los = self.los_component(u[..., i : i + KN].reshape(*lead, K, N))
        return InitialState(positions, shadowing, heading, fading, los)

    def los_component(self, u_phase: np.ndarray) -> np.ndarray:
        """Rician LOS component (..., 2, K, N) (real, imag planes) of the phases
        ``2 pi u_phase`` drawn as uniforms (..., K, N); only for ``fading="rician"``."""
        phase = _TWO_PI * u_phase
        return self.los_amp * np.stack([np.cos(phase), np.sin(phase)], axis=-3)

    def innovations(self, u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scaled innovations from float32 uniforms ``u`` (..., 2, L, pairs_per_slot).

        Plane 0 of ``u`` sets the radii, plane 1 the angles. Returns (or writes into
        ``out``, any float dtype and strides) the (..., 2, L, pairs_per_slot) float32
        values: pairs ``< fading_pairs`` are the real (plane 0) and imaginary (plane 1)
        Gauss-Markov inputs ``sigma w`` of each (device, sub-channel), row-major; the
        others unit normals for mobility (plane 0 heading, plane 1 shadowing) of each
        device.
        """
        if out is None:
            out = np.empty(u.shape, dtype=np.float32)
        box_muller(
            u[..., 0, :, :],
            u[..., 1, :, :],
            self._innovation_log_scale,
            (out[..., 0, :, :], out[..., 1, :, :]),
        )
        return out

    # --------------------------------------------------------------- physics
    def fading_power(
        self, h: np.ndarray, los: np.ndarray | None, fused: bool | None = None
    ) -> np.ndarray:
        """``|h|^2`` (..., K, N) of diffuse states (..., 2, K, N) (real, imag planes).

        ``los`` (broadcastable to ``h``) is the Rician LOS component or None. ``fused``:
        ``re^2 + im^2`` in one einsum pass (which may round the sum like a fused
        multiply-add), or square then add; None (default) picks the einsum from 4096
        values up. Pass a bool where the last bit must not depend on the array size.
        """
        if los is not None:
            h = los + self.diffuse_amp * h
        if not (h.size >= 1 << 12 if fused is None else fused):  # small: less call overhead
            sq = np.square(h)
            return sq[..., 0, :, :] + sq[..., 1, :, :]
        # re^2 + im^2 in one pass (the same products and sums as square-then-add)
        return np.einsum("...ckn,...ckn->...kn", h, h)

    def large_scale(
        self,
        positions_m: np.ndarray,
        shadowing_db: np.ndarray,
        receivers_m: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(distance_m, pathloss_db, beta)``, each (..., K), of positions (..., K, 2).

        Distances are to the base station at the origin, or to ``receivers_m`` (an array
        of (x, y) positions in m broadcastable against ``positions_m``, e.g. (..., E, 1, 2)
        against (..., 1, K, 2) for E other receivers), clamped at ``min_distance_m``;
        ``beta = 10^(-(PL(d) + shadowing_db) / 10)``.
        """
        cfg = self.config
        if receivers_m is not None:
            positions_m = positions_m - receivers_m
        d = np.maximum(np.hypot(positions_m[..., 0], positions_m[..., 1]), cfg.min_distance_m)
        pl = pathloss_db(
            d,
            cfg.pathloss_model,
            intercept_db=cfg.pathloss_intercept_db,
            exponent=cfg.pathloss_exponent,
            carrier_hz=cfg.carrier_hz,
        )
        return d, pl, 10.0 ** (-(pl + shadowing_db) / 10.0)

    def gauss_markov_block(self, h_last: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The diffuse fading of the next ``L`` slots from scaled innovations, (..., L, M).

        ``h[t] = rho^(t+1) h_last + sum_{i<=t} rho^(t-i) w[i]`` for ``t < L``: the
        Gauss-Markov recursion over a block as one matrix product.

        Parameters
        ----------
        h_last : ndarray, shape (..., M)
            Real and imaginary parts of the current state, flattened.
        w : ndarray, shape (..., L, M), L <= NOISE_BLOCK_STEPS
            Innovations already scaled by :attr:`innovation_std`.
        """
        L = w.shape[-2]
        traj = self.gm_inputs[:L, :L] @ w
        traj += self.gm_state[:L, None] * h_last[..., None, :]
        return traj

    def move(
        self,
        positions_m: np.ndarray,
        heading_rad: np.ndarray,
        shadowing_db: np.ndarray,
        z_heading: np.ndarray,
        z_shadowing: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One slot of mobility: new ``(positions_m, heading_rad, shadowing_db)``.

        ``z_heading`` and ``z_shadowing`` (..., K) are standard normals.
        """
        cfg = self.config
        step_m = cfg.speed_mps * cfg.slot_s
        heading = heading_rad + HEADING_STD_RAD * z_heading
        delta = step_m * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        new = positions_m + delta
        r = np.hypot(new[..., 0], new[..., 1])
        outside = (r > cfg.cell_radius_m) | (r < cfg.min_distance_m)
        # devices that would leave the annulus stay put and turn around
        new[outside] = positions_m[outside]
        heading[outside] += np.pi
        a = np.exp(-step_m / cfg.shadowing_decorrelation_m)
        shadowing = a * shadowing_db + np.sqrt(1.0 - a * a) * (cfg.shadowing_std_db * z_shadowing)
        return new, heading, shadowing


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
    model : ChannelModel
        The scenario's physics (shared with the batched channel).

    Notes
    -----
    Slots are produced in blocks of up to :data:`NOISE_BLOCK_STEPS`: one generator
    call draws the innovations of the whole block, the Gauss-Markov recursion runs
    over it, and (without mobility) gains and features are computed for the whole
    block in a few vectorized operations. A step is then a view into the block.
    """

    def __init__(
        self, config: UplinkConfig, features: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.config = config
        self.model = model = ChannelModel(config)
        self._shape = model.shape
        self._feature_fn = features
        self._block_len = self._pos = 0
        self._slot = 0
        self.gains = np.zeros(self._shape)
        self.features = None

    # ----------------------------------------------------------------- state
    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Drop devices, draw shadowing and fading; return the gains (K, N)."""
        self._rng = rng
        state = self.model.initial_state(rng.random(self.model.reset_draws))
        self.positions_m = state.positions_m
        self.shadowing_db = state.shadowing_db
        self.heading_rad = state.heading_rad
        self._h = state.fading
        self._los = state.los
        self._update_large_scale()
        self._block_len = self._pos = 0
        self._slot = 0
        self._set_slot(self.model.fading_power(self._h, self._los) * self._beta_col, None)
        return self.gains

    def step(self) -> np.ndarray:
        """Advance one slot; return the new gains (K, N)."""
        if not self.model.pairs_per_slot:  # static fading, fixed devices: nothing changes
            return self.gains
        if self._pos == self._block_len:
            self._next_block()
        i = self._pos
        self._pos += 1
        self._slot += 1
        if self.model.mobile:
            self._move(self._mobility_draws[:, i])
            self._set_slot(self._power_block[i] * self._beta_col, None)
        else:
            features = None if self._feature_block is None else self._feature_block[i]
            self._set_slot(self._gain_block[i], features)
        return self.gains

    # -------------------------------------------------------------- internals
    def _next_block(self) -> None:
        model = self.model
        B = model.block_length(self._slot)
        F = model.fading_pairs
        u = self._rng.random((2, B, model.pairs_per_slot), dtype=np.float32)
        z = model.innovations(u)
        if model.static_fading:
            power = np.broadcast_to(model.fading_power(self._h, self._los), (B, *self._shape))
        else:
            w = z[:, :, :F].transpose(1, 0, 2).reshape(B, 2 * F)
            w = model.gauss_markov_block(self._h.reshape(-1), w).reshape(B, *self._h.shape)
            self._h = w[-1].copy()
            power = model.fading_power(w, self._los)
        if model.mobile:
            self._mobility_draws = z[:, :, F:].astype(np.float64)  # (2, B, K)
            self._power_block = power
        else:
            gains = power * self._beta_col
            gains.flags.writeable = False
            self._gain_block = gains
            self._feature_block = self._feature_fn(gains) if self._feature_fn else None
        self._block_len = B
        self._pos = 0

    def _set_slot(self, gains: np.ndarray, features: np.ndarray | None) -> None:
        if features is None:
            gains.flags.writeable = False
            if self._feature_fn is not None:
                features = self._feature_fn(gains)
        self.gains = gains
        self.features = features

    def _update_large_scale(self) -> None:
        d, pl, beta = self.model.large_scale(self.positions_m, self.shadowing_db)
        self.distance_m = d
        self.pathloss_db = pl
        self._beta_col = beta[:, None]

    def _move(self, z: np.ndarray) -> None:
        """One slot of mobility from normals ``z`` (2, K): heading, shadowing."""
        self.positions_m, self.heading_rad, self.shadowing_db = self.model.move(
            self.positions_m, self.heading_rad, self.shadowing_db, z[0], z[1]
        )
        self._update_large_scale()
