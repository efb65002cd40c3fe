r"""``sca``: successive convex approximation of the power control, with channel reassignment.

The reference study's classical baseline. Powers are continuous in
``[p_min, p_max]`` (the scenario's lowest and highest level, W) and mapped to the
nearest level (in dB) at the end.

Derivation
----------
Fix the sub-channel assignment ``c`` and, at the current powers ``p^t``, the SIC
decoding order (descending received power ``p_k g_{k c_k}``, ties to the lower index,
as in :mod:`qfl_gym.wireless.noma`). With ``s_j = p_j g_j`` (``g_j = g_{j c_j}``) and
``D_{kj} = 1`` if ``j`` shares ``k``'s sub-channel and is decoded after ``k``,
``D_{kj} = eps`` if it is decoded before (imperfect-SIC residual), 0 otherwise, the
rate of device ``k`` is a difference of two concave functions of ``p``:

.. math::

    r_k(p) = B\,[u_k(p) - v_k(p)], \quad
    u_k = \log_2\big(\sigma^2 + s_k + \textstyle\sum_j D_{kj} s_j\big), \quad
    v_k = \log_2\big(\sigma^2 + \textstyle\sum_j D_{kj} s_j\big).

A concave function lies below its tangent, ``v_k(p) <= v_k(p^t) + grad v_k(p^t)^T
(p - p^t)``, hence

.. math::

    r_k(p) \ge \tilde r_k(p; p^t) = B\,[u_k(p) - v_k(p^t)
        - \nabla v_k(p^t)^\top (p - p^t)],

a concave lower bound, tight at ``p^t`` (first-order approximation of the interference
terms). Each iteration maximizes the concave surrogate ``sum_k r~_k(p)/1e6 -
energy_weight * slot_s * sum_k p_k`` over the box with L-BFGS-B
(:func:`scipy.optimize.minimize`; smooth, box-constrained, analytic gradient), a
minorize-maximize step: the fixed-order sum rate cannot decrease. The env's rate
re-sorts the decoding order by the new received powers, so the step is additionally
safeguarded on the true objective (backtracking halfway towards ``p^t`` up to 10
times, stopping if none improves): the recorded objective never decreases.
Iterations stop when the gain falls below ``tol`` (relative) or after ``max_iter``.
Outage penalties are not differentiable and are left out of the surrogate (the final
answer is scored by the env's reward).

Alternation with channel reassignment: starting from the greedy assignment at full
power, SCA on the powers alternates with a best-response pass over devices (each moves
to the sub-channel that maximizes the continuous-power objective with all others
fixed), until no device moves or ``max_outer`` rounds. With perfect SIC the sum rate of
a sub-channel, ``B log2(1 + sum_k s_k / sigma^2)``, increases in every power, so SCA
keeps full power and the channel passes do the work.
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
from qfl_gym.wireless.problem import AllocationProblem

LN2 = np.log(2.0)


def continuous_objective(
    problem: AllocationProblem, channels: np.ndarray, powers_w: np.ndarray
) -> np.ndarray | float:
    """Env reward without outage terms at continuous powers, Mbit/s.

    ``channels`` (..., K) int, ``powers_w`` (..., K) W; leading batch axes allowed.
    """
    g = np.take_along_axis(
        np.broadcast_to(problem.gains, (*channels.shape[:-1], *problem.gains.shape)),
        channels[..., None],
        axis=-1,
    )[..., 0]
    s = powers_w * g
    sinr = noma.sic_sinr(s, channels, problem.noise_w, problem.sic_residual)
    value = noma.rates_bps(sinr, problem.bandwidth_hz).sum(axis=-1) * 1e-6
    if problem.energy_weight:
        value = value - problem.energy_weight * problem.slot_s * powers_w.sum(axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def interference_matrix(received_w: np.ndarray, channels: np.ndarray, eps: float) -> np.ndarray:
    """``D`` of the module docstring for the decoding order of ``received_w`` (K,)."""
    K = received_w.size
    key = received_w * (1.0 - np.arange(K) * 1e-12)
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

    Returns
    -------
    SCAResult
        ``trace[0]`` is the objective at the start, then one entry per iteration.
    """
    levels = problem.power_levels_w
    p_lo, p_hi = float(levels[0]), float(levels[-1])
    B = problem.bandwidth_hz * 1e-6 / LN2  # Mbit/s per nat
    g = problem.gains[np.arange(problem.num_devices), channels]
    noise = problem.noise_w[channels]
    w_energy = problem.energy_weight * problem.slot_s * p_hi
    p = np.clip(np.asarray(powers_w, dtype=float), p_lo, p_hi)
    value = continuous_objective(problem, channels, p)
    result = SCAResult(p, [value], 0, 1)
    if p_lo == p_hi:
        return result
    bounds = [(p_lo / p_hi, 1.0)] * p.size
    gx = g * p_hi  # received power per unit of x = p / p_max
    for _ in range(max_iter):
        D = interference_matrix(p * g, channels, problem.sic_residual)
        Dg = D * gx[None, :]
        x_t = p / p_hi
        lin = (Dg / (noise + Dg @ x_t)[:, None]).sum(axis=0)  # sum_k grad ln(v_k arg) at x_t
        res = minimize(
            _negative_surrogate,
            x_t,
            args=(Dg, lin, x_t, gx, noise, B, w_energy),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
        )
        candidate = np.clip(res.x * p_hi, p_lo, p_hi)
        accepted = False
        for _ in range(10):
            new_value = continuous_objective(problem, channels, candidate)
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


def _negative_surrogate(
    x: np.ndarray,
    Dg: np.ndarray,
    lin: np.ndarray,
    x_t: np.ndarray,
    gx: np.ndarray,
    noise: np.ndarray,
    B: float,
    w_energy: float,
) -> tuple[float, np.ndarray]:
    """Minus the concave surrogate (up to a constant) and its gradient, in ``x = p/p_max``."""
    arg_u = noise + gx * x + Dg @ x
    value = np.log(arg_u).sum() - lin @ (x - x_t)
    grad = gx / arg_u + (Dg / arg_u[:, None]).sum(axis=0) - lin
    return -(B * value - w_energy * x.sum()), -(B * grad - w_energy)


def nearest_levels(powers_w: np.ndarray, levels_w: np.ndarray) -> np.ndarray:
    """Index of the level nearest to each power in dB."""
    diff = np.abs(np.log(powers_w)[:, None] - np.log(levels_w)[None, :])
    return diff.argmin(axis=1)


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

    ``last_stats`` adds ``objective`` (env reward of the returned levels),
    ``continuous_objective`` (before rounding to levels), ``powers_w`` (the continuous
    powers, W), ``trace`` (objective after every SCA iteration and channel pass; never
    decreasing) and ``iterations``.
    """

    name = "sca"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        tol: float = 1e-6,
        max_iter: int = 30,
        max_outer: int = 5,
    ) -> None:
        self.tol = check_float("tol", tol, low=0.0)
        self.max_iter = check_int("max_iter", max_iter, low=1)
        self.max_outer = check_int("max_outer", max_outer, low=1)
        super().__init__(env, seed)

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # K x K products: BLAS threads only add overhead
            return self._solve(problem, stats)

    def _solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K, N = problem.num_devices, problem.num_subchannels
        channels = balanced_strongest(problem.gains)
        p = np.full(K, float(problem.power_levels_w[-1]))
        trace = [continuous_objective(problem, channels, p)]
        evaluations, iterations = 1, 0
        for _ in range(self.max_outer):
            res = sca_powers(problem, channels, p, tol=self.tol, max_iter=self.max_iter)
            p = res.powers_w
            trace.extend(res.trace[1:])
            evaluations += res.evaluations
            iterations += res.iterations
            value = trace[-1]
            moved = False
            for k in range(K):
                cand = np.repeat(channels[None], N, axis=0)
                cand[:, k] = np.arange(N)
                values = continuous_objective(problem, cand, np.broadcast_to(p, (N, K)))
                evaluations += N
                j = int(np.argmax(values))
                if values[j] > value + 1e-12 * max(1.0, abs(value)) and j != channels[k]:
                    channels = cand[j]
                    value = float(values[j])
                    moved = True
            trace.append(value)
            if not moved:
                break
        levels = nearest_levels(p, problem.power_levels_w)
        stats.update(
            objective_evaluations=evaluations + 1,
            objective=float(problem.reward(channels, levels)),
            continuous_objective=trace[-1],
            powers_w=p,
            trace=trace,
            iterations=iterations,
        )
        return channels, levels
