r"""``sca``: successive convex approximation of the power control, with channel reassignment.

The reference study's classical baseline. Powers are continuous in
``[p_min, p_max]`` (the scenario's lowest and highest level, W) and mapped to levels at
the end. SCA maximizes ``info["problem"]``'s objective, whatever it is
(:func:`~qfl_gym.wireless.problem.objective_value`: sum rate, deliveries, round time,
sum rate under a minimum rate, with the uplink's energy and outage prices).

Derivation
----------
Fix the sub-channel assignment ``c`` and, at the current powers ``p^t``, the SIC
decoding order (descending received power ``p_k g_{k c_k}``, ties to the lower index,
with the order key of :mod:`qfl_gym.wireless.noma`). With ``s_j = p_j g_j``
(``g_j = g_{j c_j}``) and ``D_{kj} = 1`` if ``j`` shares ``k``'s sub-channel and is
decoded after ``k``, ``D_{kj} = eps`` if it is decoded before (imperfect-SIC residual),
0 otherwise, the rate of device ``k`` is a difference of two concave functions of ``p``:

.. math::

    r_k(p) = B\,[u_k(p) - v_k(p)], \quad
    u_k = \log_2\big(\sigma^2 + s_k + \textstyle\sum_j D_{kj} s_j\big), \quad
    v_k = \log_2\big(\sigma^2 + \textstyle\sum_j D_{kj} s_j\big).

A concave function lies below its tangent, ``v_k(p) <= v_k(p^t) + grad v_k(p^t)^T
(p - p^t)``, hence

.. math::

    r_k(p) \ge \tilde r_k(p; p^t) = B\,[u_k(p) - v_k(p^t)
        - \nabla v_k(p^t)^\top (p - p^t)],

a concave lower bound, tight at ``p^t``. The objective is a sum of per-device terms
(plus, for ``round-time``, the minimum rate); its non-smooth parts (the outage and
deadline steps, the shortfall hinge, the minimum over devices) are replaced by the
smooth relaxation :func:`~qfl_gym.wireless.problem.smooth_objective` (logistic steps,
softplus, soft minimum), whose every term is nondecreasing in each rate. Evaluated at
the lower bounds ``r~_k`` it is therefore a minorizer of the relaxed objective, tight at
``p^t``; each iteration maximizes it over the box with L-BFGS-B
(:func:`scipy.optimize.minimize`; analytic gradient) from ``p^t``, a minorize-maximize
step. For the sum rate (and energy price) the relaxation is exact and the surrogate is
the concave function ``sum_k r~_k / 1e6 - energy_weight slot_s sum_k p_k``. The env's
rate re-sorts the decoding order by the new received powers, so the step is
additionally safeguarded on the relaxed objective at the true rates (backtracking
halfway towards ``p^t`` up to 10 times, stopping if none improves): the recorded
objective never decreases. Iterations stop when the gain falls below ``tol``
(relative) or after ``max_iter``.

Alternation with channel reassignment: starting from the greedy assignment at full
power, SCA on the powers alternates with a best-response pass over devices (each moves
to the sub-channel that maximizes the relaxed objective with all others fixed), until
no device moves or ``max_outer`` rounds. With perfect SIC the sum rate of a
sub-channel, ``B log2(1 + sum_k s_k / sigma^2)``, increases in every power, so for the
sum rate SCA keeps full power and the channel passes do the work.

The answer is chosen on the true objective: the powers after every alternation are
mapped to levels (nearest in dB, and all rounded down or up), and these candidates and
the greedy start are scored with ``problem.reward``; the best is returned, so SCA never
does worse than ``greedy`` on the configured objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from agents.base import AssignmentAgent
from agents.classical.heuristics import balanced_strongest
from qfl_gym.validation import check_float, check_int
from qfl_gym.wireless import noma
from qfl_gym.wireless.noma import _tie_factor
from qfl_gym.wireless.problem import (
    AllocationProblem,
    ProblemConstants,
    objective_value,
    smooth_objective,
)

LN2 = np.log(2.0)
#: Relative width of the smooth steps of the relaxed objective (``smooth_objective``).
DEFAULT_SOFTNESS = 0.1
#: L-BFGS-B iterations per minorizer when the relaxed objective is nonlinear.
NONLINEAR_INNER_ITERATIONS = 15


def continuous_rates(
    problem: AllocationProblem, channels: np.ndarray, powers_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rates (bit/s) and SINRs at continuous powers, the env's NOMA formula.

    ``channels`` (..., K) int, ``powers_w`` (..., K) W; leading batch axes allowed.
    """
    g = np.take_along_axis(
        np.broadcast_to(problem.gains, (*channels.shape[:-1], *problem.gains.shape)),
        channels[..., None],
        axis=-1,
    )[..., 0]
    sinr = noma.sic_sinr(powers_w * g, channels, problem.noise_w, problem.sic_residual)
    return noma.rates_bps(sinr, problem.bandwidth_hz), sinr


def continuous_objective(
    problem: AllocationProblem, channels: np.ndarray, powers_w: np.ndarray
) -> np.ndarray | float:
    """``problem``'s objective (:func:`objective_value`) at continuous powers (W).

    ``channels`` (..., K) int, ``powers_w`` (..., K) W; leading batch axes allowed.
    """
    rate, sinr = continuous_rates(problem, channels, powers_w)
    value = objective_value(rate, sinr, powers_w, problem.constants)
    return float(value) if np.ndim(value) == 0 else value


@dataclass(frozen=True)
class RelaxedObjective:
    """The objective SCA climbs: :func:`smooth_objective` of ``constants`` at true rates.

    ``softness`` and ``slowest_scale_bps`` are fixed for a climb, so it is one function
    throughout (its trace never decreases). ``objective_constants`` default to the
    problem's.
    """

    problem: AllocationProblem
    softness: float = DEFAULT_SOFTNESS
    slowest_scale_bps: float | None = None
    objective_constants: ProblemConstants | None = None

    @property
    def constants(self) -> ProblemConstants:
        c = self.objective_constants
        return self.problem.constants if c is None else c

    def __call__(self, channels: np.ndarray, powers_w: np.ndarray) -> np.ndarray | float:
        """Relaxed objective at continuous powers; leading batch axes allowed."""
        rate, sinr = continuous_rates(self.problem, channels, powers_w)
        if self.constants.linear:  # nothing to relax: the objective itself
            value = objective_value(rate, sinr, powers_w, self.constants)
            return float(value) if np.ndim(value) == 0 else value
        value = smooth_objective(
            rate,
            powers_w,
            self.constants,
            softness=self.softness,
            slowest_scale_bps=self.slowest_scale_bps,
        )[0]
        return float(value) if np.ndim(value) == 0 else value


def interference_matrix(received_w: np.ndarray, channels: np.ndarray, eps: float) -> np.ndarray:
    """``D`` of the module docstring for the decoding order of ``received_w`` (K,)."""
    key = received_w * _tie_factor(received_w.size)  # NOMA's decoding-order key
    same = channels[:, None] == channels[None, :]
    after = same & (key[None, :] < key[:, None])
    before = same & (key[None, :] > key[:, None])
    return after + eps * before


@dataclass
class SCAResult:
    """Powers found by :func:`sca_powers` and the objective after every iteration."""

    powers_w: np.ndarray
    trace: list[float] = field(default_factory=list)
    iterations: int = 0
    evaluations: int = 0


def sca_powers(
    problem: AllocationProblem,
    channels: np.ndarray,
    powers_w: np.ndarray,
    *,
    tol: float = 1e-6,
    max_iter: int = 30,
    objective: RelaxedObjective | None = None,
) -> SCAResult:
    """SCA power control for a fixed sub-channel assignment (module docstring).

    Parameters
    ----------
    problem : AllocationProblem
    channels : ndarray of int, shape (K,)
    powers_w : ndarray, shape (K,)
        Starting powers in ``[p_min, p_max]``, W.
    tol : float
        Stop when an iteration gains less than ``tol * max(1, |objective|)``.
    max_iter : int
    objective : RelaxedObjective, optional
        The relaxed objective to climb (default: ``RelaxedObjective(problem)``).

    Returns
    -------
    SCAResult
        ``trace[0]`` is the relaxed objective at the start, then one entry per iteration.
    """
    f = RelaxedObjective(problem) if objective is None else objective
    levels = problem.power_levels_w
    p_lo, p_hi = float(levels[0]), float(levels[-1])
    g = problem.gains[np.arange(problem.num_devices), channels]
    noise = problem.noise_w[channels]
    p = np.clip(np.asarray(powers_w, dtype=float), p_lo, p_hi)
    value = f(channels, p)
    result = SCAResult(p, [value], 0, 1)
    if p_lo == p_hi:
        return result
    bounds = [(p_lo / p_hi, 1.0)] * p.size
    # a nonlinear relaxation only needs an ascent step per minorizer: cap L-BFGS-B
    options = None if f.constants.linear else {"maxiter": NONLINEAR_INNER_ITERATIONS}
    gx = g * p_hi  # received power per unit of x = p / p_max
    for _ in range(max_iter):
        D = interference_matrix(p * g, channels, problem.sic_residual)
        Dg = D * gx[None, :]
        x_t = p / p_hi
        surrogate = _Surrogate(f, Dg, gx, noise, x_t, p_hi, problem.bandwidth_hz)
        res = minimize(
            surrogate.negative, x_t, jac=True, method="L-BFGS-B", bounds=bounds, options=options
        )
        candidate = np.clip(res.x * p_hi, p_lo, p_hi)
        accepted = False
        for _ in range(10):
            new_value = f(channels, candidate)
            result.evaluations += 1
            if new_value >= value:
                accepted = True
                break
            candidate = 0.5 * (candidate + p)
        result.iterations += 1
        if not accepted:
            break
        gain = new_value - value
        p, value = candidate, new_value
        result.trace.append(value)
        if gain < tol * max(1.0, abs(value)):
            break
    result.powers_w = p
    return result


class _Surrogate:
    """The minorizer of one SCA iteration in ``x = p / p_max`` (module docstring)."""

    def __init__(
        self,
        f: RelaxedObjective,
        Dg: np.ndarray,
        gx: np.ndarray,
        noise: np.ndarray,
        x_t: np.ndarray,
        p_hi: float,
        bandwidth_hz: float,
    ) -> None:
        self.f, self.Dg, self.gx, self.noise, self.x_t, self.p_hi = f, Dg, gx, noise, x_t, p_hi
        self.scale = bandwidth_hz / LN2  # bit/s per nat
        self.interference_t = Dg @ x_t
        arg_v = noise + self.interference_t
        self.ln_v_t = np.log(arg_v)
        self.inv_v_t = 1.0 / arg_v
        self.slopes = None
        if f.constants.linear:  # constant derivatives: one relaxation call is enough
            _, d_rate, d_power = self._relaxed(self._lower(x_t)[0], x_t)
            self.slopes = (d_rate, d_power)

    def _lower(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(r~ (bit/s), arg_u)`` at ``x``."""
        interference = self.Dg @ x
        arg_u = self.noise + self.gx * x + interference
        lower = self.scale * (
            np.log(arg_u) - self.ln_v_t - (interference - self.interference_t) * self.inv_v_t
        )
        return lower, arg_u

    def _relaxed(self, rate: np.ndarray, x: np.ndarray) -> tuple:
        f = self.f
        return smooth_objective(
            rate,
            x * self.p_hi,
            f.constants,
            softness=f.softness,
            slowest_scale_bps=f.slowest_scale_bps,
        )

    def negative(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Minus the surrogate (up to a constant when linear) and its gradient."""
        lower, arg_u = self._lower(x)
        if self.slopes is None:
            value, d_rate, d_power = self._relaxed(lower, x)
        else:  # linear: up to the constant sum_k d_rate_k B ln v_k(x_t), as L-BFGS-B sees it
            d_rate, d_power = self.slopes
            value = d_rate @ (lower + self.scale * self.ln_v_t) + self.p_hi * (d_power @ x)
        w = d_rate / arg_u
        grad = self.scale * (self.gx * w + self.Dg.T @ (w - d_rate * self.inv_v_t))
        grad += self.p_hi * d_power
        return -float(value), -grad


def nearest_levels(powers_w: np.ndarray, levels_w: np.ndarray) -> np.ndarray:
    """Index of the level nearest to each power in dB."""
    diff = np.abs(np.log(powers_w)[:, None] - np.log(levels_w)[None, :])
    return diff.argmin(axis=1)


def level_candidates(powers_w: np.ndarray, levels_w: np.ndarray) -> np.ndarray:
    """Levels (3, K) for continuous powers: nearest in dB, all rounded down, all up."""
    up = np.minimum(np.searchsorted(levels_w, powers_w * (1 - 1e-12)), levels_w.size - 1)
    down = np.maximum(np.searchsorted(levels_w, powers_w * (1 + 1e-12), side="right") - 1, 0)
    return np.stack([nearest_levels(powers_w, levels_w), down, up])


class SCAAgent(AssignmentAgent):
    """SCA power control alternating with channel reassignment (module docstring).

    Parameters
    ----------
    tol : float
        Relative gain below which SCA stops (default 1e-6).
    max_iter : int
        SCA iterations per assignment (default 30).
    max_outer : int
        Alternations of power control and channel reassignment (default 5).
    softness : float
        Relative width of the smooth steps of the relaxed objective (default 0.1;
        :func:`~qfl_gym.wireless.problem.smooth_objective`).

    Notes
    -----
    ``last_stats`` adds ``objective`` (``problem.reward`` of the returned assignment),
    ``continuous_objective`` (relaxed objective before mapping to levels), ``powers_w``
    (the continuous powers, W), ``trace`` (relaxed objective after every SCA iteration
    and channel pass; never decreasing), ``iterations`` and ``candidates`` (assignments
    scored on the true objective at the end).
    """

    name = "sca"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        tol: float = 1e-6,
        max_iter: int = 30,
        max_outer: int = 5,
        softness: float = DEFAULT_SOFTNESS,
    ) -> None:
        self.tol = check_float("tol", tol, low=0.0)
        self.max_iter = check_int("max_iter", max_iter, low=1)
        self.max_outer = check_int("max_outer", max_outer, low=1)
        self.softness = check_float("softness", softness, low=0.0, low_inclusive=False)
        super().__init__(env, seed)

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # K x K products: BLAS threads only add overhead
            return self._solve(problem, stats)

    def _solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K = problem.num_devices
        levels_w = problem.power_levels_w
        start = balanced_strongest(problem.gains)
        full = np.full(K, float(levels_w[-1]))
        # phase 1: the sum rate (with the uplink's prices) from the greedy start
        rate_only = problem.constants.sum_rate_objective()
        climb = self._alternate(
            problem, RelaxedObjective(problem, self.softness, None, rate_only), start, full
        )
        if rate_only is not problem.constants:
            # phase 2: the configured objective, from the better start on its relaxation
            scale = None
            if problem.constants.slowest_weight:  # soft minimum on the start's rate scale
                scale = float(continuous_rates(problem, start, full)[0].mean())
            f = RelaxedObjective(problem, self.softness, scale)
            c1, p1 = climb["visited"][-1]
            c0, p0 = (start, full) if f(start, full) >= f(c1, p1) else (c1, p1)
            second = self._alternate(problem, f, c0, p0)
            second["visited"] = climb["visited"] + second["visited"]
            for key in ("evaluations", "iterations"):
                second[key] += climb[key]
            climb = second
        # the answer, on the true objective: every visited point's level mappings, latest
        # first (ties keep the latest), and the greedy start
        visited = climb["visited"]
        cand_c = [c for c, _ in reversed(visited) for _ in range(3)] + [start]
        cand_l = [lv for _, pw in reversed(visited) for lv in level_candidates(pw, levels_w)]
        cand_l.append(np.full(K, levels_w.size - 1))
        values = np.asarray(problem.reward(np.stack(cand_c), np.stack(cand_l)))
        j = int(np.argmax(values))
        stats.update(
            objective_evaluations=climb["evaluations"] + len(values),
            objective=float(values[j]),
            continuous_objective=climb["trace"][-1],
            powers_w=visited[-1][1],
            trace=climb["trace"],
            iterations=climb["iterations"],
            candidates=len(values),
        )
        return cand_c[j], cand_l[j]

    def _alternate(
        self, problem: AllocationProblem, f: RelaxedObjective, channels: np.ndarray, p: np.ndarray
    ) -> dict[str, Any]:
        """SCA on the powers alternating with channel best responses, climbing ``f``."""
        K, N = problem.num_devices, problem.num_subchannels
        trace = [f(channels, p)]
        evaluations, iterations = 1, 0
        visited = []
        for _ in range(self.max_outer):
            res = sca_powers(
                problem, channels, p, tol=self.tol, max_iter=self.max_iter, objective=f
            )
            p = res.powers_w
            trace.extend(res.trace[1:])
            evaluations += res.evaluations
            iterations += res.iterations
            value = trace[-1]
            visited.append((channels, p))
            moved = False
            for k in range(K):
                cand = np.repeat(channels[None], N, axis=0)
                cand[:, k] = np.arange(N)
                values = f(cand, np.broadcast_to(p, (N, K)))
                evaluations += N
                j = int(np.argmax(values))
                if values[j] > value + 1e-12 * max(1.0, abs(value)) and j != channels[k]:
                    channels = cand[j]
                    value = float(values[j])
                    moved = True
            trace.append(value)
            if not moved:
                break
            visited.append((channels, p))
        return {
            "visited": visited,
            "trace": trace,
            "evaluations": evaluations,
            "iterations": iterations,
        }
