"""PNG figures of benchmark and case-study results (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from training_scripts.results import AgentSummary, mean_ci95
from training_scripts.rollout import StepRecord


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(
    summaries: Sequence[AgentSummary], metric: str, ylabel: str, path: Path, title: str = ""
) -> Path:
    """Bar per agent with 95% CI error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(summaries) + 1.5), 3.6))
    names = [s.agent for s in summaries]
    means = [s.metrics[metric][0] for s in summaries]
    halves = [s.metrics[metric][1] for s in summaries]
    ax.bar(names, means, yerr=halves, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def curves_by_agent(
    rows: Iterable[StepRecord], metric: str
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per agent: (round, mean, 95% CI half-width) of ``metric`` across episodes."""
    by_agent: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        value = getattr(r, metric)
        if math.isfinite(value):
            by_agent[r.agent][r.step].append(value)
    out = {}
    for agent, steps in by_agent.items():
        rounds = np.array(sorted(steps))
        stats = np.array([mean_ci95(steps[t]) for t in rounds])
        out[agent] = (rounds + 1, stats[:, 0], stats[:, 1])
    return out


def plot_curves(
    rows: Sequence[StepRecord], metric: str, ylabel: str, path: Path, title: str = ""
) -> Path | None:
    """Mean ``metric`` vs round per agent, with a shaded 95% confidence band."""
    curves = curves_by_agent(rows, metric)
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for agent, (x, mean, half) in curves.items():
        (line,) = ax.plot(x, mean, label=agent)
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_decision_time(
    scaling: Sequence[dict], path: Path, title: str = "decision time vs problem size"
) -> Path | None:
    """Median decision time (log scale) vs number of devices K, per agent."""
    if not scaling:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    by_agent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in scaling:
        by_agent[row["agent"]].append((row["num_devices"], row["median_decision_time_s"]))
    for agent, points in by_agent.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=agent)
    ax.set_xlabel("devices K")
    ax.set_ylabel("median decision time (s)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
