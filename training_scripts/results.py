"""Per-step CSVs, per-agent summaries with 95% confidence intervals, and tables."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training_scripts.rollout import COLUMNS, StepRecord

SUMMARY_METRICS = (
    ("reward", "mean reward / step", "mean"),
    ("sum_rate_mbps", "sum rate (Mbit/s)", "mean"),
    ("energy_j", "energy / step (J)", "mean"),
    ("deliveries", "deliveries / step", "mean"),
    ("global_accuracy", "final accuracy", "last"),
    ("global_loss", "final loss", "last"),
)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a Student-t 95% confidence interval (0 for n < 2)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), 0.0
    half = t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


@dataclass
class AgentSummary:
    """Summary of one agent over all its episodes."""

    agent: str
    episodes: int
    metrics: dict[str, tuple[float, float]]  # name -> (mean, ci95 half-width)
    median_decision_time_s: float


def summarize(rows: Iterable[StepRecord]) -> list[AgentSummary]:
    """Per agent: per-episode aggregates, then mean and 95% CI across episodes."""
    episodes: dict[str, dict[tuple[int, int], list[StepRecord]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        episodes[r.agent][(r.seed, r.episode)].append(r)
    out = []
    for agent, eps in episodes.items():
        metrics = {}
        for key, _, how in SUMMARY_METRICS:
            per_episode = []
            for steps in eps.values():
                values = [getattr(s, key) for s in steps]
                per_episode.append(values[-1] if how == "last" else float(np.mean(values)))
            metrics[key] = mean_ci95(per_episode)
        times = np.array([s.decision_time_s for steps in eps.values() for s in steps])
        times = times[np.isfinite(times)]
        median = float(np.median(times)) if times.size else math.nan
        out.append(AgentSummary(agent, len(eps), metrics, median))
    return out


def write_steps_csv(rows: Iterable[StepRecord], path: Path) -> None:
    """One row per (agent, seed, episode, step), columns :data:`COLUMNS`."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(v) for k, v in asdict(r).items()})


def read_steps_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV written by :func:`write_steps_csv` (strings)."""
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_summary_csv(summaries: Sequence[AgentSummary], path: Path) -> None:
    """Per agent: each metric's mean and CI half-width, and the median decision time."""
    fields = ["agent", "episodes"]
    for key, _, _ in SUMMARY_METRICS:
        fields += [key, f"{key}_ci95"]
    fields.append("median_decision_time_s")
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for s in summaries:
            row = {"agent": s.agent, "episodes": s.episodes}
            for key, (mean, half) in s.metrics.items():
                row[key], row[f"{key}_ci95"] = _fmt(mean), _fmt(half)
            row["median_decision_time_s"] = _fmt(s.median_decision_time_s)
            writer.writerow(row)


def summary_table(summaries: Sequence[AgentSummary], markdown: bool = False) -> str:
    """Text (or markdown) table: mean +/- 95% CI per metric; metrics all-NaN are omitted."""
    shown = [
        (key, label)
        for key, label, _ in SUMMARY_METRICS
        if any(math.isfinite(s.metrics[key][0]) for s in summaries)
    ]
    header = ["agent", *[label for _, label in shown], "decision time"]
    body = []
    for s in summaries:
        cells = [s.agent]
        for key, _ in shown:
            mean, half = s.metrics[key]
            cells.append(f"{mean:.4g} ± {half:.2g}" if math.isfinite(mean) else "n/a")
        cells.append(_fmt_time(s.median_decision_time_s))
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, body)])


def _fmt(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return value


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
