r"""QAOA angle optimization: initial angles, objective (expectation or CVaR), optimizer.

Initial angles (``init``)
-------------------------
The energy landscape of QAOA is non-convex; plain gradient descent from random
angles mostly stalls (measured here: 50 Adam steps from random angles barely move the
energy). Quality should not depend on luck, so every strategy is deterministic:

- ``"interp"`` (default; Zhou, Wang, Choi, Pichler, Lukin, PRX 10, 021067 (2020)): at
  depth 1 a grid search over ``gamma in (0, 3]`` x ``beta in [-pi/2, 0)`` (12 x 8
  points; the landscape is symmetric under ``(gamma, beta) -> (-gamma, -beta)``)
  followed by a local optimization; then depth by depth, the optimum at depth ``d``
  is interpolated to ``d + 1`` layers,
  ``gamma^{(d+1)}_i = (i-1)/d * gamma^{(d)}_{i-1} + (d-i+1)/d * gamma^{(d)}_i``
  (``i = 1..d+1``, ``gamma_0 = gamma_{d+1} = 0``; same for ``beta``), and optimized.
- ``"ramp"``: linear ramp ``gamma_i = dg (i - 1/2)/p``,
  ``beta_i = db (1 - (i - 1/2)/p)`` (an annealing-like schedule) with
  ``ramp=(dg, db)``, default :data:`DEFAULT_RAMP`, then optimized at depth ``p``.
- ``(gammas, betas)``: given (e.g. transferred) angles; with ``maxiter=0`` they are used
  as fixed angles without optimization.

Because the cost is normalized to a unit-variance feasible landscape
(:mod:`agents.qaoa.qubo`), good angles have the same scale on every instance, which is
what makes the grid, the ramp and angle transfer work.

Objective
---------
``cvar_alpha = 1`` minimizes the expected (normalized) energy. ``cvar_alpha < 1``
minimizes the conditional value at risk (Barkoutsos et al., Quantum 4, 256 (2020)):
the mean energy of the best ``alpha`` fraction of the probability mass, which rewards
concentrating amplitude on the good tail rather than moving the mean, what matters
when the answer is the best of several shots. Both are computed exactly from the
state vector; CVaR's gradient is that of the diagonal observable
``w_x = (E_x - E_b) / alpha`` on the tail (``E_b`` the tail's boundary energy).

Optimizers
----------
``"L-BFGS-B"`` (default), ``"BFGS"``, ``"CG"`` use the adjoint gradient;
``"COBYLA"``, ``"Nelder-Mead"``, ``"Powell"`` are derivative-free (all from
:func:`scipy.optimize.minimize`); ``"adam"`` takes ``maxiter`` Adam steps of size
``learning_rate`` with the adjoint gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

GRADIENT_OPTIMIZERS = ("L-BFGS-B", "BFGS", "CG", "adam")
FREE_OPTIMIZERS = ("COBYLA", "Nelder-Mead", "Powell")
OPTIMIZERS = GRADIENT_OPTIMIZERS + FREE_OPTIMIZERS
INITS = ("interp", "ramp")
DEFAULT_RAMP = (1.2, -0.6)
GRID_GAMMAS = np.linspace(0.25, 3.0, 12)
GRID_BETAS = -np.linspace(np.pi / 16, np.pi / 2, 8)
FTOL = 1e-6


def cvar_objective(
    cost: np.ndarray, alpha: float
) -> Callable[[np.ndarray], tuple[float, np.ndarray]] | None:
    """CVaR_alpha of the energy ``cost`` under Born probabilities (None for alpha=1)."""
    if alpha >= 1.0:
        return None
    order = np.argsort(cost, kind="stable")
    sorted_cost = cost[order]

    def objective(probs: np.ndarray) -> tuple[float, np.ndarray]:
        cum = np.cumsum(probs[order])
        b = min(int(np.searchsorted(cum, alpha)), cum.size - 1)
        before = cum[b - 1] if b else 0.0
        eb = sorted_cost[b]
        tail = probs[order[:b]] @ sorted_cost[:b]
        value = (tail + (alpha - before) * eb) / alpha
        weights = np.zeros_like(cost)
        weights[order[:b]] = (sorted_cost[:b] - eb) / alpha
        return float(value), weights

    return objective


def interpolate(angles: np.ndarray) -> np.ndarray:
    """INTERP: angles of depth ``d`` to depth ``d + 1`` (Zhou et al. 2020, eq. B1)."""
    d = angles.size
    padded = np.concatenate([[0.0], angles, [0.0]])
    i = np.arange(1, d + 2)
    return (i - 1) / d * padded[i - 1] + (d - i + 1) / d * padded[i]


def ramp(p: int, dg: float, db: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ramp angles of depth ``p``."""
    t = (np.arange(1, p + 1) - 0.5) / p
    return dg * t, db * (1.0 - t)


@dataclass
class AngleResult:
    """Optimized angles and the work spent."""

    gammas: np.ndarray
    betas: np.ndarray
    value: float
    evaluations: int = 0
    gradient_evaluations: int = 0
    per_depth: list[float] = field(default_factory=list)


class _Counter:
    def __init__(self, sim: Any, objective: Callable | None) -> None:
        self.sim = sim
        self.objective = objective
        self.evaluations = 0
        self.gradients = 0

    def value(self, theta: np.ndarray) -> float:
        p = theta.size // 2
        self.evaluations += 1
        probs = self.sim.probabilities(theta[:p], theta[p:])
        if self.objective is None:
            return float(probs @ self.sim.cost)
        return self.objective(probs)[0]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = theta.size // 2
        self.evaluations += 1
        self.gradients += 1
        v, dg, db = self.sim.value_and_grad(theta[:p], theta[p:], self.objective)
        return v, np.concatenate([dg, db])


def _local(
    counter: _Counter, theta: np.ndarray, optimizer: str, maxiter: int, learning_rate: float
) -> tuple[np.ndarray, float]:
    if maxiter == 0:
        return theta, counter.value(theta)
    if optimizer == "adam":
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        best_theta, best = theta, np.inf
        for t in range(1, maxiter + 1):
            value, grad = counter.value_and_grad(theta)
            if value < best:
                best_theta, best = theta.copy(), value
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            theta = theta - learning_rate * (m / (1 - 0.9**t)) / (
                np.sqrt(v / (1 - 0.999**t)) + 1e-8
            )
        value = counter.value(theta)
        return (theta, value) if value < best else (best_theta, best)
    if optimizer in GRADIENT_OPTIMIZERS:
        res = minimize(
            counter.value_and_grad,
            theta,
            jac=True,
            method=optimizer,
            options={"maxiter": maxiter, **({"ftol": FTOL} if optimizer == "L-BFGS-B" else {})},
        )
    else:
        options: dict[str, Any] = {"maxiter": maxiter}
        if optimizer == "COBYLA":
            options["rhobeg"] = 0.2
        res = minimize(counter.value, theta, method=optimizer, options=options)
    return np.asarray(res.x, dtype=float), float(res.fun)


def optimize_angles(
    sim: Any,
    depth: int,
    *,
    init: str | tuple = "interp",
    optimizer: str = "L-BFGS-B",
    maxiter: int = 100,
    cvar_alpha: float = 1.0,
    ramp_angles: tuple[float, float] = DEFAULT_RAMP,
    learning_rate: float = 0.05,
) -> AngleResult:
    """Optimize the ``2 * depth`` angles of ``sim`` (module docstring).

    Parameters
    ----------
    sim : StateVectorQAOA or PennyLaneQAOA
        Has ``cost``, ``probabilities(g, b)`` and ``value_and_grad(g, b, objective)``.
    depth : int
        p, QAOA layers.
    init : {"interp", "ramp"} or (gammas, betas)
    optimizer : str
        One of :data:`OPTIMIZERS`.
    maxiter : int
        Iterations of the local optimizer per depth (0: keep the initial angles).
    cvar_alpha : float
        CVaR level in (0, 1]; 1 is the expectation.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small dense products: BLAS threads only add overhead
        return _optimize(
            sim, depth, init, optimizer, maxiter, cvar_alpha, ramp_angles, learning_rate
        )


def _optimize(sim, depth, init, optimizer, maxiter, cvar_alpha, ramp_angles, learning_rate):
    objective = cvar_objective(np.asarray(sim.cost), cvar_alpha)
    counter = _Counter(sim, objective)
    per_depth: list[float] = []
    if isinstance(init, str) and init == "interp":
        grid = [(counter.value(np.array([g, b])), g, b) for g in GRID_GAMMAS for b in GRID_BETAS]
        _, g0, b0 = min(grid)
        theta, value = _local(counter, np.array([g0, b0]), optimizer, maxiter, learning_rate)
        per_depth.append(value)
        for _ in range(1, depth):
            p = theta.size // 2
            theta = np.concatenate([interpolate(theta[:p]), interpolate(theta[p:])])
            theta, value = _local(counter, theta, optimizer, maxiter, learning_rate)
            per_depth.append(value)
    else:
        if isinstance(init, str):
            gammas, betas = ramp(depth, *ramp_angles)
        else:
            gammas, betas = (np.asarray(a, dtype=float).reshape(-1) for a in init)
            if gammas.size != depth or betas.size != depth:
                raise ValueError(
                    f"init angles must be two sequences of length p={depth}, got "
                    f"{gammas.size} and {betas.size}"
                )
        theta, value = _local(
            counter, np.concatenate([gammas, betas]), optimizer, maxiter, learning_rate
        )
        per_depth.append(value)
    p = theta.size // 2
    return AngleResult(
        theta[:p].copy(),
        theta[p:].copy(),
        value,
        counter.evaluations,
        counter.gradients,
        per_depth,
    )
