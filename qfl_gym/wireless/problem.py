r"""The per-slot decision instance handed to optimizers as ``info["problem"]``.

An :class:`AllocationProblem` is one channel realization plus everything needed to
score any assignment of (sub-channel, power level) to devices on it. It is immutable
(its arrays are read-only), cheap to build every step, and evaluates batches of
assignments in one call, which is what QAOA, SCA and exhaustive search need.

The allocation objective
------------------------
:func:`objective_value` is the one definition of what every optimizer maximizes
(``AllocationProblem.reward``, the envs' reward when it is the allocation objective,
SCA at continuous powers, QAOA's cost). From each device's rate :math:`r_k` (bit/s),
SINR :math:`\gamma_k` and transmit power :math:`p_k` (W), in Mbit/s units:

.. math::

    f = \sum_k u_k + w_{\min} \min_k r_k / 10^6, \qquad
    u_k = w_r r_k / 10^6 - w_E T p_k - w_o [r_k < r_{\min}]
          + w_d P^{\text{deliver}}_k - w_s \max(0, r_{\min} - r_k) / 10^6,

with :math:`T` the slot (``slot_s``), :math:`P^{\text{deliver}}_k = [S / r_k \le
T_{\max}] \exp(-m / \gamma_k)` (:func:`~qfl_gym.wireless.delivery.delivery_probability`)
and the weights of :class:`ProblemConstants`. The named objectives
(:data:`OBJECTIVES`, built by :func:`objective_constants`) set the weights; the
uplink's prices ``energy_weight`` (:math:`w_E`) and ``outage_penalty`` (:math:`w_o`)
apply on top of every one:

``sum-rate`` (default; the reference study's)
    :math:`w_r = 1`: the sum rate in Mbit/s.
``deliveries``
    :math:`w_d = 1, w_r = 0.01`: the expected number of updates delivered within the
    deadline, plus 0.01 x the sum rate in Mbit/s as a tie-break.
``round-time``
    :math:`w_{\min} = 1, w_r = 0.001 / K`: the slowest device's rate in Mbit/s plus
    0.001 x the mean rate as a tie-break. Maximizing it minimizes the slowest upload
    :math:`S / \min_k r_k`, i.e. the round time of full participation; it is finite
    for every assignment. A shorter round always scores higher unless the two slowest
    rates differ by less than 0.1% of the difference of the mean rates.
``min-rate``
    :math:`w_r = 1, w_s =` ``min_rate_penalty``: the sum rate minus ``min_rate_penalty``
    Mbit/s per Mbit/s that a device falls short of ``min_rate_bps``. The penalty is a
    per-device term, so the QUBO of ``qaoa-qubo`` and ``annealing`` carries it like
    the rate; ``min_rate_penalty`` larger than 1 makes meeting the minimum worth more
    than rate elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from qfl_gym.validation import check_choice
from qfl_gym.wireless import noma
from qfl_gym.wireless.delivery import CHEN_WATERFALL_THRESHOLD_DB, delivery_probability

#: What ``AllocationProblem.reward`` (the optimizers' objective) measures (module docstring).
OBJECTIVES = ("sum-rate", "deliveries", "round-time", "min-rate")
#: Weight of the sum rate (per Mbit/s) in the "deliveries" objective: a tie-break.
DELIVERIES_RATE_WEIGHT = 0.01
#: Weight of the mean rate (per Mbit/s) in the "round-time" objective: a tie-break.
ROUND_TIME_MEAN_RATE_WEIGHT = 1e-3
#: Default ``min_rate_penalty`` of the "min-rate" objective (Mbit/s per Mbit/s short).
DEFAULT_MIN_RATE_PENALTY = 10.0
#: What a step reports of the assignment just taken (``info`` keys of every env).
STEP_INFO_KEYS = ("rate_bps", "sinr_db", "sum_rate_bps", "energy_j", "outage")
#: What :meth:`AllocationProblem.outcome` returns: the step keys and the objective.
OUTCOME_KEYS = (*STEP_INFO_KEYS, "reward")


@dataclass(frozen=True, eq=False)
class ProblemConstants:
    """Everything of a problem that does not change with the channel realization."""

    noise_w: np.ndarray  # (N,) W
    power_levels_w: np.ndarray  # (L,) W
    bandwidth_hz: float
    sic_residual: float
    min_rate_bps: float
    slot_s: float
    energy_weight: float
    outage_penalty: float
    # objective weights (module docstring; set by objective_constants)
    rate_weight: float = 1.0
    delivery_weight: float = 0.0
    update_bits: float = 1.0
    deadline_s: float = 1.0
    waterfall_m: float = 0.0
    shortfall_weight: float = 0.0
    slowest_weight: float = 0.0

    def __post_init__(self) -> None:
        # the envs' hot path asks this every step
        object.__setattr__(
            self,
            "_sum_rate_only",
            not (
                self.energy_weight
                or self.outage_penalty
                or self.delivery_weight
                or self.shortfall_weight
                or self.slowest_weight
            ),
        )

    @classmethod
    def from_config(cls, config: Any) -> ProblemConstants:
        """The constants of ``config`` (an :class:`~qfl_gym.wireless.config.UplinkConfig`),
        with its ``objective`` (:func:`objective_constants`)."""
        return objective_constants(getattr(config, "objective", "sum-rate"), config)

    @property
    def objective(self) -> str:
        """Name of the objective these weights define (one of :data:`OBJECTIVES`)."""
        if self.slowest_weight:
            return "round-time"
        if self.delivery_weight:
            return "deliveries"
        if self.shortfall_weight:
            return "min-rate"
        return "sum-rate"

    @property
    def uniform_noise_w(self) -> float:
        """The noise power if all sub-channels share it, else 0.0 (W)."""
        try:
            return self._uniform_noise
        except AttributeError:
            n = self.noise_w
            value = float(n[0]) if np.all(n == n[0]) else 0.0
            object.__setattr__(self, "_uniform_noise", value)
            return value

    def astuple(self) -> tuple:
        return (
            self.noise_w,
            self.power_levels_w,
            self.bandwidth_hz,
            self.sic_residual,
            self.min_rate_bps,
            self.slot_s,
            self.energy_weight,
            self.outage_penalty,
            self.rate_weight,
            self.delivery_weight,
            self.update_bits,
            self.deadline_s,
            self.waterfall_m,
            self.shortfall_weight,
            self.slowest_weight,
        )

    @property
    def sum_rate_only(self) -> bool:
        """True when the objective is ``rate_weight * sum rate`` alone."""
        return self._sum_rate_only

    def sum_rate_objective(self) -> ProblemConstants:
        """The same uplink and prices with the ``sum-rate`` objective."""
        if self.objective == "sum-rate":
            return self
        return dataclasses.replace(
            self, rate_weight=1.0, delivery_weight=0.0, shortfall_weight=0.0, slowest_weight=0.0
        )

    @property
    def linear(self) -> bool:
        """True when the objective is linear in the rates and powers (sum rate, energy)."""
        return not (
            self.outage_penalty
            or self.delivery_weight
            or self.shortfall_weight
            or self.slowest_weight
        )

    @property
    def separable(self) -> bool:
        """True when the objective is a sum of per-device terms (no minimum over devices)."""
        return not self.slowest_weight

    def equals(self, other: ProblemConstants) -> bool:
        return all(
            np.array_equal(a, b) for a, b in zip(self.astuple(), other.astuple(), strict=True)
        )


class AllocationProblem:
    """One channel realization and the allocation objective to maximize on it.

    Parameters
    ----------
    gains : array_like, shape (K, N)
        Linear power gains ``g_kn`` (unitless); copied and made read-only.
    noise_w : array_like, shape (N,)
        Noise power per sub-channel, W.
    power_levels_w : array_like, shape (L,)
        Transmit power levels, W, ascending.
    bandwidth_hz : float
        Bandwidth per sub-channel, Hz.
    sic_residual : float
        Imperfect-SIC residual ``eps`` in [0, 1].
    min_rate_bps : float
        Minimum rate, bit/s; a device below it is in outage.
    slot_s : float
        Duration of the transmission the energy refers to, s.
    energy_weight : float
        Reward penalty per joule, (Mbit/s)/J.
    outage_penalty : float
        Reward penalty per device in outage, Mbit/s.
    rate_weight : float
        Weight of the sum rate in the objective, per Mbit/s (1 by default).
    delivery_weight : float
        Objective per expected timely delivery of an update (0 by default): device k
        delivers with probability ``[update_bits / r_k <= deadline_s] exp(-m / SINR_k)``
        (:func:`qfl_gym.wireless.delivery.delivery_probability`).
    update_bits, deadline_s, waterfall_m : float
        Update size (bit), upload deadline (s) and linear waterfall threshold ``m`` of
        that delivery probability.
    shortfall_weight : float
        Objective penalty per Mbit/s a device falls short of ``min_rate_bps`` (0 by
        default; the ``min-rate`` objective).
    slowest_weight : float
        Weight of the slowest device's rate in Mbit/s (0 by default; ``round-time``).

    Notes
    -----
    :func:`objective_constants` sets these weights for the named objectives
    (:data:`OBJECTIVES`); the module docstring states the objective they define.

    Every evaluation method takes ``channels`` and ``power_levels`` as integer arrays
    of shape (K,) (one assignment) or (M, K) (a batch) and validates them.
    """

    __slots__ = ("_c", "_table", "gains")

    def __init__(
        self,
        gains: Any,
        noise_w: Any,
        power_levels_w: Any,
        bandwidth_hz: float,
        sic_residual: float = 0.0,
        min_rate_bps: float = 0.0,
        slot_s: float = 1.0,
        energy_weight: float = 0.0,
        outage_penalty: float = 0.0,
        rate_weight: float = 1.0,
        delivery_weight: float = 0.0,
        update_bits: float = 1.0,
        deadline_s: float = 1.0,
        waterfall_m: float = 0.0,
        shortfall_weight: float = 0.0,
        slowest_weight: float = 0.0,
    ) -> None:
        gains = np.array(gains, dtype=float)
        if gains.ndim != 2 or 0 in gains.shape:
            raise ValueError(f"gains must have shape (K, N) with K, N >= 1, got {gains.shape}")
        if not np.all(np.isfinite(gains)) or np.any(gains < 0):
            raise ValueError("gains must be finite and non-negative")
        noise = np.array(noise_w, dtype=float).reshape(-1)
        if noise.shape != (gains.shape[1],) or np.any(noise <= 0):
            raise ValueError(
                f"noise_w must be {gains.shape[1]} positive values (one per sub-channel), "
                f"got {noise_w!r}"
            )
        levels = np.array(power_levels_w, dtype=float).reshape(-1)
        if levels.size == 0 or np.any(levels <= 0) or np.any(np.diff(levels) <= 0):
            raise ValueError(f"power_levels_w must be positive and ascending, got {levels}")
        if not 0.0 <= sic_residual <= 1.0:
            raise ValueError(f"sic_residual must be in [0, 1], got {sic_residual}")
        if not bandwidth_hz > 0:
            raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
        noise.flags.writeable = False
        levels.flags.writeable = False
        const = ProblemConstants(
            noise,
            levels,
            float(bandwidth_hz),
            float(sic_residual),
            float(min_rate_bps),
            float(slot_s),
            float(energy_weight),
            float(outage_penalty),
            float(rate_weight),
            float(delivery_weight),
            float(update_bits),
            float(deadline_s),
            float(waterfall_m),
            float(shortfall_weight),
            float(slowest_weight),
        )
        self._init(gains, const)

    def _init(self, gains: np.ndarray, const: ProblemConstants) -> None:
        gains.flags.writeable = False
        object.__setattr__(self, "gains", gains)
        object.__setattr__(self, "_c", const)
        object.__setattr__(self, "_table", None)

    @classmethod
    def from_config(cls, config: Any, gains: Any) -> AllocationProblem:
        """The instance of ``config`` (an ``UplinkConfig``) on ``gains`` (K, N)."""
        c = ProblemConstants.from_config(config)
        return cls(gains, *c.astuple())

    @classmethod
    def _trusted(cls, gains: np.ndarray, constants: ProblemConstants) -> AllocationProblem:
        """Fast constructor for environments: ``gains`` is fresh, owned and valid."""
        self = object.__new__(cls)
        self._init(gains, constants)
        return self

    # ------------------------------------------------------------ protocol
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"AllocationProblem is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AllocationProblem):
            return NotImplemented
        return np.array_equal(self.gains, other.gains) and self._c.equals(other._c)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):
        return (AllocationProblem, (np.array(self.gains), *self._c.astuple()))

    def __repr__(self) -> str:
        return (
            f"AllocationProblem(K={self.num_devices}, N={self.num_subchannels}, "
            f"L={self.num_power_levels}, bandwidth_hz={self.bandwidth_hz:g}, "
            f"sic_residual={self.sic_residual:g})"
        )

    # ------------------------------------------------------------ constants
    noise_w = property(lambda self: self._c.noise_w, doc="Noise per sub-channel (N,), W.")
    power_levels_w = property(
        lambda self: self._c.power_levels_w, doc="Power levels (L,), W, ascending."
    )
    bandwidth_hz = property(lambda self: self._c.bandwidth_hz, doc="Sub-channel bandwidth, Hz.")
    sic_residual = property(lambda self: self._c.sic_residual, doc="Imperfect-SIC residual.")
    min_rate_bps = property(lambda self: self._c.min_rate_bps, doc="Outage threshold, bit/s.")
    slot_s = property(lambda self: self._c.slot_s, doc="Slot duration for energy, s.")
    energy_weight = property(lambda self: self._c.energy_weight, doc="(Mbit/s)/J penalty.")
    outage_penalty = property(lambda self: self._c.outage_penalty, doc="Mbit/s per outage.")
    constants = property(
        lambda self: self._c, doc="The :class:`ProblemConstants` (the objective's weights)."
    )
    objective = property(
        lambda self: self._c.objective, doc="Name of the objective, one of OBJECTIVES."
    )

    @property
    def num_devices(self) -> int:
        """K."""
        return self.gains.shape[0]

    @property
    def num_subchannels(self) -> int:
        """N."""
        return self.gains.shape[1]

    @property
    def num_power_levels(self) -> int:
        """L."""
        return self._c.power_levels_w.shape[0]

    @property
    def num_assignments(self) -> int:
        """Size of the search space, ``(N * L) ** K``."""
        return (self.num_subchannels * self.num_power_levels) ** self.num_devices

    @property
    def received_power_table(self) -> np.ndarray:
        """``p_l g_kn`` for every (k, n, l), flat (K*N*L,), W; built on first use."""
        if self._table is None:
            table = noma.received_power_table(self.gains, self._c.power_levels_w)
            table.flags.writeable = False
            object.__setattr__(self, "_table", table)
        return self._table

    # ------------------------------------------------------------ evaluation
    def check_assignment(self, channels: Any, power_levels: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate an assignment (or batch); return both as integer arrays."""
        c = np.asarray(channels)
        p = np.asarray(power_levels)
        K = self.num_devices
        if c.shape != p.shape or c.ndim not in (1, 2) or c.shape[-1] != K:
            raise ValueError(
                f"channels and power_levels must both have shape (K,) or (M, K) with K={K}; "
                f"got {c.shape} and {p.shape}"
            )
        for name, a, hi in (
            ("channels", c, self.num_subchannels),
            ("power_levels", p, self.num_power_levels),
        ):
            if a.dtype.kind not in "iu":
                raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= hi):
                bad = np.argwhere((a < 0) | (a >= hi))[0]
                raise ValueError(f"{name}{list(bad)} = {a[tuple(bad)]} is out of range 0..{hi - 1}")
        return c, p

    def received_power_w(self, channels: Any, power_levels: Any) -> np.ndarray:
        """Received power ``p_k g_{k,c_k}`` in W, shape like ``channels``."""
        c, p = self.check_assignment(channels, power_levels)
        return self._received(c, p)

    def sinr(self, channels: Any, power_levels: Any) -> np.ndarray:
        """Linear SINR of each device after SIC, shape like ``channels``."""
        c, p = self.check_assignment(channels, power_levels)
        return noma.sic_sinr(self._received(c, p), c, self._c.noise_w, self._c.sic_residual)

    def rates(self, channels: Any, power_levels: Any) -> np.ndarray:
        """Per-device rate ``B log2(1 + SINR)`` in bit/s, shape like ``channels``."""
        return noma.rates_bps(self.sinr(channels, power_levels), self._c.bandwidth_hz)

    def sum_rate(self, channels: Any, power_levels: Any) -> np.ndarray | float:
        """Sum rate in bit/s: a float for (K,) input, shape (M,) for (M, K) input."""
        c, p = self.check_assignment(channels, power_levels)
        const = self._c
        out = noma.sum_rate_bps(
            self._received(c, p), c, const.noise_w, const.bandwidth_hz, const.sic_residual
        )
        return float(out) if c.ndim == 1 else out

    def energy_j(self, power_levels: Any) -> np.ndarray:
        """Transmit energy per device over one slot, ``p_k * slot_s`` in J."""
        return self._c.power_levels_w.take(np.asarray(power_levels)) * self._c.slot_s

    def reward(self, channels: Any, power_levels: Any) -> np.ndarray | float:
        """The allocation objective of assignments (same shapes as :meth:`sum_rate`).

        :func:`objective_value` of the assignments' rates, SINRs and powers, in the
        objective's units (Mbit/s for ``sum-rate``; :attr:`objective` names it; module
        docstring). With the default ``sum-rate`` objective it is ChannelPower-v0's
        reward, ``sum_rate / 1e6 - energy_weight * sum(energy_j) - outage_penalty *
        #outage``, equal to ``sum_rate / 1e6`` unless energy or outage are priced; the
        environment's ``objective`` option makes it (and that reward) another objective.
        Optimizer agents maximize it.
        """
        const = self._c
        if const.sum_rate_only:
            return objective_value(None, None, None, const, self.sum_rate(channels, power_levels))
        c, p = self.check_assignment(channels, power_levels)
        sinr = noma.sic_sinr(self._received(c, p), c, const.noise_w, const.sic_residual)
        rate = noma.rates_bps(sinr, const.bandwidth_hz)
        value = objective_value(rate, sinr, const.power_levels_w.take(p), const)
        return float(value) if np.ndim(value) == 0 else value

    def outcome(self, channels: Any, power_levels: Any) -> dict[str, Any]:
        """What one assignment (K,) achieves on this realization.

        Returns
        -------
        dict
            ``rate_bps`` (K,), ``sinr_db`` (K,, floored at -300 dB), ``sum_rate_bps``
            (float), ``energy_j`` (K,, ``p_k * slot_s``), ``outage`` (K,) bool (rate below
            ``min_rate_bps``) and ``reward`` (float, Mbit/s, as :meth:`reward`).
        """
        c, p = self.check_assignment(channels, power_levels)
        if c.ndim != 1:
            raise ValueError(f"outcome() takes one assignment of shape (K,), got {c.shape}")
        out = self._outcome(c.astype(np.int64, copy=False), p.astype(np.int64, copy=False))
        return {key: out[key] for key in OUTCOME_KEYS}

    def _outcome(self, c: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        """:meth:`outcome` for validated int64 (K,) arrays: the environments' hot path."""
        return uplink_outcome(self.gains, c, p, self._c)

    def _received(self, c: np.ndarray, p: np.ndarray) -> np.ndarray:
        return noma.received_power(
            self.received_power_table, c, p, self.num_subchannels, self.num_power_levels
        )


@lru_cache(maxsize=64)
def _row_offsets(num_devices: int, num_subchannels: int) -> np.ndarray:
    """Flat index of ``gains[k, 0]`` for every device k."""
    out = np.arange(num_devices) * num_subchannels
    out.flags.writeable = False
    return out


def device_objective(
    rate_bps: np.ndarray, sinr: np.ndarray, power_w: np.ndarray, constants: ProblemConstants
) -> np.ndarray:
    """Each device's term ``u_k`` of the allocation objective (module docstring).

    ``u_k = rate_weight r_k / 1e6 - energy_weight p_k slot_s
    - outage_penalty [r_k < min_rate] + delivery_weight P(deliver_k)
    - shortfall_weight max(0, min_rate - r_k) / 1e6``.
    Arrays share any shape with a trailing device axis; ``rate_bps`` in bit/s, ``sinr``
    linear, ``power_w`` in W (continuous powers allowed). The objective is their sum over
    devices plus, for ``round-time``, ``slowest_weight * min_k r_k / 1e6``
    (:func:`objective_value`).
    """
    const = constants
    u = rate_bps * (1e-6 * const.rate_weight)
    if const.energy_weight:
        u = u - const.energy_weight * const.slot_s * power_w
    if const.outage_penalty:
        u = u - const.outage_penalty * (rate_bps < const.min_rate_bps)
    if const.delivery_weight:
        u = u + const.delivery_weight * delivery_probability(
            rate_bps, sinr, const.update_bits, const.deadline_s, const.waterfall_m
        )
    if const.shortfall_weight:
        u = u - (1e-6 * const.shortfall_weight) * np.maximum(const.min_rate_bps - rate_bps, 0.0)
    return u


def objective_value(
    rate_bps: np.ndarray | None,
    sinr: np.ndarray | None,
    power_w: np.ndarray | None,
    constants: ProblemConstants,
    sum_rate_bps: Any = None,
) -> Any:
    """The allocation objective from per-device outcomes: the one definition.

    Every environment reward that is the allocation objective, ``AllocationProblem.reward``
    and every optimizer (SCA at continuous powers included) use it.

    Parameters
    ----------
    rate_bps, sinr, power_w : ndarray, shape (..., K)
        Each device's rate (bit/s), linear SINR and transmit power (W; continuous
        powers allowed), with any leading axes (environments, assignments) and a
        trailing device axis.
    constants : ProblemConstants
        The objective's weights (:func:`objective_constants`).
    sum_rate_bps : float or ndarray, shape (...), optional
        ``sum_k rate_bps`` as the caller already computed it (e.g. by NOMA's
        per-sub-channel identity); used as is when the objective is the (weighted) sum
        rate alone, so callers keep their own summation. Then ``rate_bps``, ``sinr`` and
        ``power_w`` may be None.

    Returns
    -------
    float or ndarray, shape (...)
        ``sum_k u_k + slowest_weight * min_k r_k / 1e6`` with ``u_k`` of
        :func:`device_objective` (module docstring), Mbit/s units.
    """
    const = constants
    if const._sum_rate_only:
        total = rate_bps.sum(axis=-1) if sum_rate_bps is None else sum_rate_bps
        return total * (1e-6 * const.rate_weight)
    value = device_objective(rate_bps, sinr, power_w, const).sum(axis=-1)
    if const.slowest_weight:
        value = value + (1e-6 * const.slowest_weight) * rate_bps.min(axis=-1)
    return value


def smooth_objective(
    rate_bps: np.ndarray,
    power_w: np.ndarray,
    constants: ProblemConstants,
    *,
    softness: float = 0.1,
    slowest_scale_bps: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth relaxation of :func:`objective_value` and its gradients, for SCA.

    The same terms and weights, with each non-smooth one replaced by a smooth
    surrogate whose width is ``softness`` times the term's own scale:

    - outage ``[r < r_min]`` and the deadline ``[r >= S / T_max]`` of ``deliveries``:
      logistic steps of width ``softness * r_min`` and ``softness * S / T_max``;
    - the ``min-rate`` shortfall ``max(0, r_min - r)``: a softplus of the same width;
    - ``min_k r_k`` of ``round-time``: the soft minimum ``-tau log sum_k exp(-r_k / tau)``
      (never above the minimum), ``tau = softness * slowest_scale_bps`` (default: the
      bandwidth, i.e. 1 bit/s/Hz);
    - the SINR of the packet-error term is the one the rate implies,
      ``2^(r / B) - 1``.

    Every term is nondecreasing in each rate, so a lower bound on the rates gives a
    lower bound on the relaxation (SCA's minorization). It tends to
    :func:`objective_value` as ``softness`` goes to 0 (away from the steps).

    Parameters
    ----------
    rate_bps, power_w : ndarray, shape (..., K)
        Rates (bit/s) and transmit powers (W), trailing device axis.
    constants : ProblemConstants
    softness : float
        Relative width of the smooth steps (> 0).
    slowest_scale_bps : float, optional
        Rate scale of the soft minimum, bit/s.

    Returns
    -------
    value : ndarray, shape (...)
        The relaxed objective (Mbit/s units).
    d_rate : ndarray, shape (..., K)
        Its derivative with respect to each rate, per bit/s.
    d_power : ndarray, shape (..., K)
        Its derivative with respect to each power, per W.
    """
    c = constants
    r = rate_bps
    value = r.sum(axis=-1) * (1e-6 * c.rate_weight)
    d_rate = np.full(r.shape, 1e-6 * c.rate_weight)
    d_power = np.full(r.shape, -c.energy_weight * c.slot_s)
    if c.energy_weight:
        value = value - c.energy_weight * c.slot_s * power_w.sum(axis=-1)
    if (c.outage_penalty or c.shortfall_weight) and c.min_rate_bps > 0:
        tau = softness * c.min_rate_bps
        z = (c.min_rate_bps - r) / tau
        step = _logistic(z)  # smooth [r < r_min]
        if c.outage_penalty:
            value = value - c.outage_penalty * step.sum(axis=-1)
            d_rate = d_rate + c.outage_penalty * step * (1.0 - step) / tau
        if c.shortfall_weight:
            w = 1e-6 * c.shortfall_weight
            value = value - w * tau * np.logaddexp(0.0, z).sum(axis=-1)
            d_rate = d_rate + w * step
    if c.delivery_weight:
        required = c.update_bits / c.deadline_s
        tau = softness * required
        on_time = _logistic((r - required) / tau)
        d_on_time = on_time * (1.0 - on_time) / tau
        if c.waterfall_m:
            growth = np.exp2(r / c.bandwidth_hz)  # 1 + SINR
            sinr = np.maximum(growth - 1.0, 1e-300)
            ok = np.exp(-c.waterfall_m / sinr)
            q = c.waterfall_m / sinr
            d_ok = ok * q * (growth / sinr) * (np.log(2.0) / c.bandwidth_hz)
        else:
            ok, d_ok = 1.0, 0.0
        value = value + c.delivery_weight * (on_time * ok).sum(axis=-1)
        d_rate = d_rate + c.delivery_weight * (d_on_time * ok + on_time * d_ok)
    if c.slowest_weight:
        tau = softness * (c.bandwidth_hz if slowest_scale_bps is None else slowest_scale_bps)
        low = r.min(axis=-1, keepdims=True)
        e = np.exp(-(r - low) / tau)
        total = e.sum(axis=-1, keepdims=True)
        soft_min = (low - tau * np.log(total))[..., 0]
        value = value + (1e-6 * c.slowest_weight) * soft_min
        d_rate = d_rate + (1e-6 * c.slowest_weight) * e / total
    return value, d_rate, d_power


def _logistic(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def objective_constants(
    objective: str,
    uplink: Any,
    *,
    deadline_s: float | None = None,
    waterfall_m: float | None = None,
) -> ProblemConstants:
    """The :class:`ProblemConstants` of a named objective on an uplink configuration.

    Parameters
    ----------
    objective : str
        One of :data:`OBJECTIVES` (module docstring).
    uplink : UplinkConfig
        Supplies noise, power levels, bandwidth, SIC residual, ``min_rate_bps``,
        ``slot_s``, the prices ``energy_weight`` / ``outage_penalty``, ``update_bits``
        (``deliveries``) and ``min_rate_penalty`` (``min-rate``).
    deadline_s : float, optional
        Upload deadline of ``deliveries``, s. Default: the uplink's ``slot_s`` (an
        update must arrive within the decision slot; QFL-v0 passes its round deadline).
    waterfall_m : float, optional
        Linear waterfall threshold ``m`` of the packet error rate in ``deliveries``
        (0: error-free packets). Default: Chen et al.'s 0.023 dB
        (:data:`~qfl_gym.wireless.delivery.CHEN_WATERFALL_THRESHOLD_DB`).
    """
    check_choice("objective", objective, OBJECTIVES)
    noise = np.full(uplink.num_subchannels, uplink.noise_w)
    noise.flags.writeable = False
    const = ProblemConstants(
        noise,
        uplink.power_levels_w,
        float(uplink.bandwidth_hz),
        float(uplink.sic_residual),
        float(uplink.min_rate_bps),
        float(uplink.slot_s),
        float(uplink.energy_weight),
        float(uplink.outage_penalty),
    )
    if objective == "deliveries":
        if waterfall_m is None:
            waterfall_m = float(10.0 ** (CHEN_WATERFALL_THRESHOLD_DB / 10.0))
        return dataclasses.replace(
            const,
            rate_weight=DELIVERIES_RATE_WEIGHT,
            delivery_weight=1.0,
            update_bits=float(uplink.update_bits),
            deadline_s=float(uplink.slot_s if deadline_s is None else deadline_s),
            waterfall_m=waterfall_m,
        )
    if objective == "round-time":
        return dataclasses.replace(
            const,
            rate_weight=ROUND_TIME_MEAN_RATE_WEIGHT / uplink.num_devices,
            slowest_weight=1.0,
        )
    if objective == "min-rate":
        penalty = getattr(uplink, "min_rate_penalty", DEFAULT_MIN_RATE_PENALTY)
        return dataclasses.replace(const, shortfall_weight=float(penalty))
    return const


@lru_cache(maxsize=64)
def _env_gain_offsets(num_envs: int, num_devices: int, num_subchannels: int) -> np.ndarray:
    """Flat index of ``gains[e, k, 0]``, device-major (K, n)."""
    out = (
        np.arange(num_envs, dtype=np.int64)[None, :] * (num_devices * num_subchannels)
        + np.arange(num_devices, dtype=np.int64)[:, None] * num_subchannels
    )
    out.flags.writeable = False
    return out


def uplink_outcome(
    gains: np.ndarray, channels: np.ndarray, levels: np.ndarray, constants: ProblemConstants
) -> dict[str, Any]:
    """What assignments achieve on their channel realizations: one env or a batch.

    The one step kernel of the uplink, shared by every environment (single envs pass one
    realization, vector envs one per sub-environment).

    Parameters
    ----------
    gains : ndarray, shape (K, N) or (n, K, N)
        Linear power gains of one environment or of ``n``.
    channels, levels : ndarray of int64, shape (K,) or (n, K)
        Validated sub-channel and power-level indices.
    constants : ProblemConstants
        Noise, power levels, bandwidth, SIC residual and the objective.

    Returns
    -------
    dict
        ``rate_bps``, ``sinr`` (linear), ``sinr_db`` (floored at -300 dB), ``energy_j``
        (``p_k slot_s``), ``power_w``, ``outage`` (rate below ``min_rate_bps``), each
        shaped like ``channels``; ``sum_rate_bps`` and ``reward`` (the objective,
        :func:`objective_value`): Python floats for one environment, (n,) arrays for a
        batch.
    """
    const = constants
    if channels.ndim == 2 and channels.shape[0] == 1:  # one env with a batch axis
        one = uplink_outcome(gains[0], channels[0], levels[0], const)
        return {key: np.asarray(value)[None] for key, value in one.items()}
    noise = const.uniform_noise_w or const.noise_w
    if channels.ndim == 1:
        power = const.power_levels_w.take(levels)
        s = power * gains.take(_row_offsets(*gains.shape) + channels)
        sinr = noma.sic_sinr(s, channels, noise, const.sic_residual)
        rate = noma.rates_bps(sinr, const.bandwidth_hz)
        sum_rate = sum(rate.tolist())
        reward = float(objective_value(rate, sinr, power, const, sum_rate))
    else:
        # device-major (K, n): the K x K decoding comparisons run over long rows
        n, K, N = gains.shape
        ch = channels.T
        power = const.power_levels_w.take(levels.T)
        s = power * gains.reshape(-1).take(_env_gain_offsets(n, K, N) + ch)
        sinr_dm = noma.sic_sinr_device_major(s, ch, noise, const.sic_residual)
        rate_dm = noma.rates_bps(sinr_dm, const.bandwidth_hz)
        sum_rate = rate_dm.sum(axis=0)
        sinr, rate, power = sinr_dm.T, rate_dm.T, power.T
        reward = objective_value(rate, sinr, power, const, sum_rate)
    sinr_db = np.maximum(sinr, 1e-30)
    np.log10(sinr_db, out=sinr_db)
    sinr_db *= 10.0
    return {
        "rate_bps": rate,
        "sinr": sinr,
        "sinr_db": sinr_db,
        "sum_rate_bps": sum_rate,
        "energy_j": power * const.slot_s,
        "power_w": power,
        "outage": rate < const.min_rate_bps,
        "reward": reward,
    }
