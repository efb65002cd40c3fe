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


def save_figure(fig, path: Path | str) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG, 120 dpi), close it; return the path."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return Path(path)


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
    return save_figure(fig, path)


def curves_by_agent(
    rows: Iterable[StepRecord], metric: str, x: str = "step"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per agent: (x, mean, 95% CI half-width) of ``metric`` across episodes, per round.

    ``x="step"``: the round number (1-based); another column (``"wall_time_s"``): its
    mean across episodes at each round.
    """
    by_agent: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    xs: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        value = getattr(r, metric)
        if math.isfinite(value):
            by_agent[r.agent][r.step].append(value)
            if x != "step":
                xs[r.agent][r.step].append(getattr(r, x))
    out = {}
    for agent, steps in by_agent.items():
        rounds = np.array(sorted(steps))
        stats = np.array([mean_ci95(steps[t]) for t in rounds])
        if x == "step":
            axis = rounds + 1.0
        else:
            axis = np.array([np.mean(xs[agent][t]) for t in rounds], dtype=float)
        out[agent] = (axis, stats[:, 0], stats[:, 1])
    return out


def plot_curves(
    rows: Sequence[StepRecord],
    metric: str,
    ylabel: str,
    path: Path,
    title: str = "",
    reference: str | None = None,
    target: float | None = None,
    x: str = "step",
) -> Path | None:
    """Mean ``metric`` vs round (or ``x``) per agent, with a shaded 95% confidence band.

    ``reference``: an agent drawn as a dashed black line (e.g. the perfect uplink);
    ``target``: a horizontal dotted line (e.g. the target accuracy).
    """
    curves = curves_by_agent(rows, metric, x)
    if x != "step":
        curves = {a: c for a, c in curves.items() if np.isfinite(c[0]).all()}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for agent, (xv, mean, half) in curves.items():
        if agent == reference:
            ax.plot(xv, mean, "k--", lw=1.6, label=agent)
            continue
        (line,) = ax.plot(xv, mean, label=agent)
        ax.fill_between(xv, mean - half, mean + half, color=line.get_color(), alpha=0.07)
    if target is not None:
        ax.axhline(target, color="grey", ls=":", lw=1.0, label=f"target {target:g}")
    ax.set_xlabel("round" if x == "step" else "simulated time (s)")
    if x != "step":
        ax.set_xscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_paired(paired: Sequence, metrics: Sequence[str], path: Path, title: str = "") -> Path:
    """Forest plot: per metric (one panel), each agent's mean paired difference against
    the baseline with its 95% interval; filled markers = the interval excludes 0."""
    from training_scripts.paired_stats import METRICS_BY_KEY

    plt = _pyplot()
    metrics = list(metrics)
    agents = list(dict.fromkeys(d.agent for d in paired))
    cols = min(3, max(1, len(metrics)))
    rows_n = max(1, math.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(
        rows_n,
        cols,
        figsize=(3.6 * cols, 0.35 * len(agents) * rows_n + 1.4 * rows_n),
        squeeze=False,
    )
    by = {(d.agent, d.metric): d for d in paired}
    for i, ax in enumerate(axes.flat):
        if i >= len(metrics):
            ax.axis("off")
            continue
        m = metrics[i]
        for j, a in enumerate(agents):
            d = by.get((a, m))
            if d is None or not math.isfinite(d.mean_diff):
                continue
            lo = d.mean_diff - d.ci_low if math.isfinite(d.ci_low) else 0.0
            hi = d.ci_high - d.mean_diff if math.isfinite(d.ci_high) else 0.0
            color = "tab:grey" if not d.significant else ("tab:green" if d.better else "tab:red")
            ax.errorbar(
                d.mean_diff,
                j,
                xerr=[[lo], [hi]],
                fmt="o",
                color=color,
                capsize=3,
                mfc=color if d.significant else "white",
            )
        ax.axvline(0.0, color="k", lw=0.8)
        ax.set_yticks(range(len(agents)))
        ax.set_yticklabels(agents if i % cols == 0 else [""] * len(agents), fontsize=7)
        ax.invert_yaxis()
        meta = METRICS_BY_KEY.get(m)
        ax.set_title(f"{meta.label} ({meta.unit})" if meta else m, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


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
    return save_figure(fig, path)
