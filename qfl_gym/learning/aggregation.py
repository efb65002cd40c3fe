r"""Server-side aggregation of the delivered model updates (numpy; no torch).

The base station holds the global parameters :math:`\theta` (P,). After local training
device :math:`k` holds :math:`\theta_k` and has :math:`n_k` training samples; only the
updates the uplink *delivered* (:math:`k \in \mathcal{D}`) reach the server. Every rule
works on the deltas :math:`\Delta_k = \theta_k - \theta` of the delivered devices:

.. math::

    \theta^{+} = \theta + \mathrm{rule}\big(\{\Delta_k, n_k\}_{k\in\mathcal{D}}\big),
    \qquad \mathcal{D} = \emptyset \Rightarrow \theta^{+} = \theta .

FedAvg (McMahan et al., AISTATS 2017) is the sample-weighted mean,
:math:`\mathrm{rule} = \sum_{k\in\mathcal{D}} n_k \Delta_k / \sum_{k\in\mathcal{D}} n_k`,
which equals the sample-weighted mean of the delivered models :math:`\theta_k`.

Extending
---------
A rule is a function ``rule(deltas (M, P), weights (M,), **options) -> (P,)`` over the
``M >= 1`` delivered updates; :func:`register_aggregation` adds one under a name that
:class:`~qfl_gym.learning.config.LearningConfig.aggregation` then accepts. Robust rules
(coordinate-wise median and trimmed mean, Yin et al. 2018; Krum, Blanchard et al. 2017),
DP clipping and noise (McMahan et al., ICLR 2018) and attackers plug in here: they see
deltas, so clipping norms and distances are measured on updates, not on models.

Robust rules
------------
They ignore the sample-count weights (a malicious device could claim any ``n_k``):

- ``median``: coordinate-wise median of the M deltas (Yin, Chen, Ramchandran and
  Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
  ICML 2018).
- ``trimmed-mean``: per coordinate, drop the ``b = ceil(trim_fraction * M)`` largest
  and smallest values and average the rest (Yin et al. 2018); ``b`` is clamped to
  ``(M - 1) // 2`` so at least one value remains.
- ``krum``: with ``f = ceil(byzantine_fraction * M)`` assumed Byzantine updates, each
  update's score is the sum of squared distances to its ``M - f - 2`` nearest
  neighbours (at least 1); the update with the lowest score is chosen, or the mean of
  the ``num_selected`` lowest (multi-Krum) (Blanchard, El Mhamdi, Guerraoui and
  Stainer, "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
  NeurIPS 2017). Ties: lower index first.

Their tolerance limits (checked when a scenario is built) are in
:mod:`qfl_gym.learning.attacks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

AggregationRule = Callable[..., np.ndarray]


def fedavg(deltas: np.ndarray, weights: np.ndarray, **_: Any) -> np.ndarray:
    """Sample-weighted mean of the deltas, shape (P,).

    Parameters
    ----------
    deltas : ndarray, shape (M, P)
        Delivered updates ``theta_k - theta``.
    weights : ndarray, shape (M,)
        Non-negative weights (sample counts ``n_k``); their sum must be positive.
    """
    total = weights.sum()
    if not total > 0:
        raise ValueError(f"fedavg weights must have a positive sum, got {weights}")
    return (weights / total) @ deltas


def mean(deltas: np.ndarray, weights: np.ndarray, **_: Any) -> np.ndarray:
    """Unweighted mean of the deltas (every delivered device counts the same), (P,)."""
    return deltas.mean(axis=0)


def coordinate_median(deltas: np.ndarray, weights: np.ndarray, **_: Any) -> np.ndarray:
    """Coordinate-wise median of the deltas (Yin et al. 2018), (P,); ignores weights."""
    return np.median(deltas, axis=0)


def robust_count(fraction: float, num: int) -> int:
    """``ceil(fraction * num)``, robust to float round-off (``ceil(0.2 * 10) = 2``)."""
    return math.ceil(fraction * num - 1e-9)


def trimmed_mean(
    deltas: np.ndarray, weights: np.ndarray, *, trim_fraction: float = 0.2, **_: Any
) -> np.ndarray:
    """Coordinate-wise trimmed mean (Yin et al. 2018), (P,); ignores weights.

    Parameters
    ----------
    deltas : ndarray, shape (M, P)
    weights : ndarray, shape (M,)
        Unused.
    trim_fraction : float
        In [0, 0.5): ``ceil(trim_fraction * M)`` values are dropped from each end of
        every coordinate (at most ``(M - 1) // 2``).
    """
    if not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
    M = deltas.shape[0]
    b = min(robust_count(trim_fraction, M), (M - 1) // 2)
    if b == 0:
        return deltas.mean(axis=0)
    return np.sort(deltas, axis=0)[b : M - b].mean(axis=0)


def krum(
    deltas: np.ndarray,
    weights: np.ndarray,
    *,
    byzantine_fraction: float = 0.2,
    num_selected: int = 1,
    **_: Any,
) -> np.ndarray:
    """Krum / multi-Krum (Blanchard et al. 2017), (P,); ignores weights.

    Parameters
    ----------
    deltas : ndarray, shape (M, P)
    weights : ndarray, shape (M,)
        Unused.
    byzantine_fraction : float
        In [0, 0.5): ``f = ceil(byzantine_fraction * M)`` updates are assumed
        Byzantine; each score sums the squared distances to the ``max(M - f - 2, 1)``
        nearest other updates.
    num_selected : int
        m >= 1: the mean of the m lowest-scored updates (capped at ``M - f``, >= 1).
    """
    if not 0.0 <= byzantine_fraction < 0.5:
        raise ValueError(f"byzantine_fraction must be in [0, 0.5), got {byzantine_fraction}")
    if num_selected < 1:
        raise ValueError(f"num_selected must be >= 1, got {num_selected}")
    M = deltas.shape[0]
    if M == 1:
        return deltas[0].copy()
    f = robust_count(byzantine_fraction, M)
    neighbours = min(max(M - f - 2, 1), M - 1)
    sq = np.einsum("mp,mp->m", deltas, deltas)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (deltas @ deltas.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    scores = np.sort(d2, axis=1)[:, :neighbours].sum(axis=1)
    m = max(1, min(int(num_selected), M - f))
    best = np.argsort(scores, kind="stable")[:m]
    return deltas[best].mean(axis=0)


#: Aggregation rules by name (``LearningConfig.aggregation`` accepts these names).
AGGREGATION_RULES: dict[str, AggregationRule] = {
    "fedavg": fedavg,
    "mean": mean,
    "median": coordinate_median,
    "trimmed-mean": trimmed_mean,
    "krum": krum,
}


def register_aggregation(name: str, rule: AggregationRule, *, overwrite: bool = False) -> None:
    """Make ``rule(deltas (M, P), weights (M,), **options) -> (P,)`` available as ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"aggregation name must be a non-empty string, got {name!r}")
    if not callable(rule):
        raise ValueError(f"aggregation rule {name!r} must be callable, got {rule!r}")
    if name in AGGREGATION_RULES and not overwrite:
        raise ValueError(f"aggregation rule {name!r} exists; pass overwrite=True to replace it")
    AGGREGATION_RULES[name] = rule


def aggregate(
    local_params: np.ndarray,
    weights: np.ndarray,
    delivered: np.ndarray,
    global_params: np.ndarray,
    rule: str = "fedavg",
    **options: Any,
) -> np.ndarray:
    """The new global parameters (P,) from the delivered local models.

    Parameters
    ----------
    local_params : ndarray, shape (K, P)
        Every device's model after local training (undelivered rows are ignored).
    weights : ndarray, shape (K,)
        Aggregation weights, normally the devices' training-sample counts ``n_k``.
    delivered : ndarray of bool, shape (K,)
        Whether each device's update reached the base station this round.
    global_params : ndarray, shape (P,)
        The global model the round started from (broadcast to every device).
    rule : str
        Name in :data:`AGGREGATION_RULES`.
    **options
        Passed to the rule.

    Returns
    -------
    ndarray, shape (P,)
        A new array; equal to ``global_params`` when nothing was delivered.
    """
    local_params = np.asarray(local_params)
    global_params = np.asarray(global_params)
    weights = np.asarray(weights, dtype=float)
    delivered = np.asarray(delivered)
    if local_params.ndim != 2 or global_params.shape != local_params.shape[1:]:
        raise ValueError(
            f"local_params must be (K, P) and global_params (P,); got {local_params.shape} "
            f"and {global_params.shape}"
        )
    K = local_params.shape[0]
    if weights.shape != (K,) or delivered.shape != (K,):
        raise ValueError(
            f"weights and delivered must have shape ({K},); got {weights.shape} and "
            f"{delivered.shape}"
        )
    if delivered.dtype != np.bool_:
        raise ValueError(f"delivered must be a boolean array, got dtype {delivered.dtype}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f"weights must be finite and non-negative, got {weights}")
    try:
        fn = AGGREGATION_RULES[rule]
    except KeyError:
        raise ValueError(
            f"unknown aggregation rule {rule!r}; valid: {', '.join(map(repr, AGGREGATION_RULES))}"
        ) from None
    if not delivered.any():
        return global_params.copy()
    deltas = local_params[delivered] - global_params
    step = np.asarray(fn(deltas, weights[delivered], **options))
    if step.shape != global_params.shape:
        raise ValueError(
            f"aggregation rule {rule!r} returned shape {step.shape}, expected {global_params.shape}"
        )
    return global_params + step
