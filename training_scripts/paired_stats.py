"""Paired comparisons over seeds: per-episode metrics and differences against a baseline.

Every agent of a case study plays the same seeds (same device drops, data partition,
model initialization and channel draws), so the per-seed *difference* of a metric
between an agent and a baseline removes most of the between-seed variance. For each
agent, metric and baseline this module reports the mean per-seed difference and its
95% Student-t interval,

.. math::

    \\bar d \\pm t_{0.975,\\,n-1}\\, s_d / \\sqrt{n},

over the ``n`` seeds where both values are finite (a metric such as rounds to a target
accuracy is undefined on a seed where the target is not reached).

Per-episode metrics (:data:`EPISODE_METRICS`), from one episode's step records:

- ``rounds_to_target``: first round (1-based) whose global test accuracy reaches the
  target accuracy; undefined (NaN) if never reached within the episode;
- ``time_to_target_s``: simulated wall-clock time (s) at that round (``wall_time_s``
  of the environment's ``info``; NaN where the env does not report it);
- ``loss_auc``: area under the test-loss curve divided by the rounds (mean test loss
  over rounds 1..R, nats): lower = faster and better convergence;
- ``final_accuracy``, ``final_loss``: the global model's after the last round;
- ``sum_rate_mbps``, ``deliveries``, ``round_time_s``: means per round;
- ``decision_time_s``: median decision time per round (s).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Columns of ``paired.csv``, in order.
PAIRED_COLUMNS = ("agent", "baseline", "metric", "mean_diff", "ci_low", "ci_high", "n_seeds")


@dataclass(frozen=True)
class EpisodeMetric:
    """A per-episode metric: its key, label, unit and which direction is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


#: The metrics of :func:`episode_metrics`, headline metrics first.
EPISODE_METRICS: tuple[EpisodeMetric, ...] = (
    EpisodeMetric("rounds_to_target", "rounds to target accuracy", "rounds", False),
    EpisodeMetric("time_to_target_s", "time to target accuracy", "s", False),
    EpisodeMetric("loss_auc", "area under the test-loss curve / R", "nats", False),
    EpisodeMetric("final_accuracy", "final test accuracy", "-", True),
    EpisodeMetric("final_loss", "final test loss", "nats", False),
    EpisodeMetric("sum_rate_mbps", "sum rate per round", "Mbit/s", True),
    EpisodeMetric("deliveries", "updates delivered per round", "updates", True),
    EpisodeMetric("round_time_s", "round duration", "s", False),
    EpisodeMetric("decision_time_s", "median decision time", "s", False),
)
METRICS_BY_KEY = {m.key: m for m in EPISODE_METRICS}


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-seed difference ``agent - baseline`` of one metric, with a 95% t interval.

    ``ci_low`` / ``ci_high`` are NaN when fewer than two seeds pair up.
    """

    agent: str
    baseline: str
    metric: str
    mean_diff: float
    ci_low: float
    ci_high: float
    n_seeds: int

    @property
    def significant(self) -> bool:
        """True when the 95% interval excludes 0 (needs n_seeds >= 2)."""
        return (
            self.n_seeds >= 2
            and math.isfinite(self.ci_low)
            and math.isfinite(self.ci_high)
            and (self.ci_low > 0.0 or self.ci_high < 0.0)
        )

    @property
    def better(self) -> bool | None:
        """Whether the agent is better than the baseline (None if not significant)."""
        if not self.significant:
            return None
        meta = METRICS_BY_KEY.get(self.metric)
        higher = meta.higher_is_better if meta is not None else True
        return (self.mean_diff > 0) == higher


def paired_t_interval(
    diffs: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float, int]:
    """Mean, interval low, interval high and ``n`` of per-seed differences.

    Non-finite entries are dropped. With ``n < 2`` the interval is ``(nan, nan)``; with
    zero spread it is the point ``(mean, mean)``.
    """
    from scipy.stats import t

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(d.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(t.ppf(0.5 + confidence / 2.0, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def paired_differences(
    per_seed: Mapping[str, Mapping[str, Mapping[int, float]]],
    baseline: str,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> list[PairedDifference]:
    """Every agent (except the baseline) x metric against ``baseline``.

    A metric without a single finite pair for an agent (e.g. the decision time of a
    reference run that makes no decisions) gets no row.

    Parameters
    ----------
    per_seed : mapping
        ``per_seed[agent][metric][seed]`` = the metric of that agent's episode on that
        seed (as :func:`episode_metrics` returns).
    baseline : str
        The agent every other one is compared with; must be in ``per_seed``.
    metrics : sequence of str, optional
        Metric keys (default: every key of the baseline, in its order).
    """
    if baseline not in per_seed:
        raise ValueError(
            f"baseline {baseline!r} did not run; agents that ran: {', '.join(per_seed)}"
        )
    base = per_seed[baseline]
    keys = list(base) if metrics is None else list(metrics)
    out = []
    for agent, values in per_seed.items():
        if agent == baseline:
            continue
        for key in keys:
            a, b = values.get(key, {}), base.get(key, {})
            seeds = sorted(set(a) & set(b))
            diffs = [a[s] - b[s] for s in seeds]
            mean, low, high, n = paired_t_interval(diffs, confidence)
            if n == 0:  # undefined for this agent (e.g. no decision time)
                continue
            out.append(PairedDifference(agent, baseline, key, mean, low, high, n))
    return out


def episode_metrics(
    rows: Iterable, target_accuracy: float | None
) -> dict[str, dict[str, dict[int, float]]]:
    """``{agent: {metric: {seed: value}}}`` from step records (see the module docstring).

    ``rows`` are :class:`~training_scripts.rollout.StepRecord` objects (one episode per
    agent and seed; a second episode of a seed raises ``ValueError``: pairing is per
    seed).
    """
    episodes: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.episode != 0:
            raise ValueError("paired statistics need one episode per agent and seed")
        episodes[r.agent][r.seed].append(r)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for agent, by_seed in episodes.items():
        metrics: dict[str, dict[int, float]] = {m.key: {} for m in EPISODE_METRICS}
        for seed, steps in by_seed.items():
            steps = sorted(steps, key=lambda s: s.step)
            for key, value in _one_episode(steps, target_accuracy).items():
                metrics[key][seed] = value
        out[agent] = metrics
    return out


def _one_episode(steps: Sequence, target: float | None) -> dict[str, float]:
    acc = np.array([s.global_accuracy for s in steps], dtype=float)
    loss = np.array([s.global_loss for s in steps], dtype=float)
    wall = np.array([getattr(s, "wall_time_s", math.nan) for s in steps], dtype=float)
    hit = np.flatnonzero(acc >= target) if target is not None else np.array([], dtype=int)
    first = int(hit[0]) if hit.size else None
    return {
        "rounds_to_target": math.nan if first is None else float(first + 1),
        "time_to_target_s": math.nan if first is None else float(wall[first]),
        "loss_auc": float(loss.mean()),
        "final_accuracy": float(acc[-1]),
        "final_loss": float(loss[-1]),
        "sum_rate_mbps": float(np.mean([s.sum_rate_mbps for s in steps])),
        "deliveries": float(np.mean([s.deliveries for s in steps])),
        "round_time_s": float(np.mean([getattr(s, "round_time_s", math.nan) for s in steps])),
        "decision_time_s": float(np.nanmedian([s.decision_time_s for s in steps]))
        if any(math.isfinite(s.decision_time_s) for s in steps)
        else math.nan,
    }


def reached_counts(
    per_seed: Mapping[str, Mapping[str, Mapping[int, float]]],
) -> dict[str, tuple[int, int]]:
    """Per agent: (seeds that reached the target accuracy, seeds run)."""
    out = {}
    for agent, metrics in per_seed.items():
        rounds = metrics.get("rounds_to_target", {})
        out[agent] = (sum(math.isfinite(v) for v in rounds.values()), len(rounds))
    return out


def write_paired_csv(rows: Iterable[PairedDifference], path: Path) -> Path:
    """``paired.csv``: one row per agent x metric, columns :data:`PAIRED_COLUMNS`."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PAIRED_COLUMNS)
        for r in rows:
            writer.writerow([getattr(r, c) for c in PAIRED_COLUMNS])
    return Path(path)
