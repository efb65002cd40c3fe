"""Parameter sweeps: every combination of scenario values x agents x seeds, in parallel.

``qfl-gym sweep --env ID --vary FIELD=V1,V2,... [--vary ...] --agents A,B --seeds 0-9
--out DIR`` runs one *task* per (value combination, agent, seed): a fresh environment
with the combination's overrides (any scenario field ``gym.make`` accepts; a varied
name ``a+b`` sets fields ``a`` and ``b`` to the same value), the agent,
and ``episodes`` seeded episodes (:func:`~training_scripts.rollout.run_episode`, so
every agent sees the same channel realizations). Tasks run

- on all local cores by default (:class:`concurrent.futures.ProcessPoolExecutor`,
  ``spawn`` workers with one BLAS/OpenMP thread each), or in this process with
  ``workers=1``;
- on a Ray cluster with ``ray_address`` (``"auto"``, ``"ray://host:10001"``, or
  ``"local"`` for a fresh local instance; an instance this process already started
  with ``ray.init`` is used as it is): one ``ray.remote`` task each, Ray schedules.

Outputs in ``DIR``:

- ``sweep.csv``: one row per value combination x agent x seed: a column per varied
  field, ``agent``, ``seed``, then the metrics averaged over the steps of the
  episodes: ``reward``, ``sum_rate_mbps``, ``energy_j``, ``deliveries`` (per step),
  ``decision_time_s`` (agent's time per decision), ``step_time_s`` (wall time of
  ``env.step``: one federated round in QFL-v0, whose local training dominates it),
  ``steps``, and for QFL-v0 ``final_accuracy`` and ``final_loss`` (global model after
  the last round, mean over episodes);
- ``trace.csv`` (agents that expose one: QAOA's ``bcd_trace``, SCA's ``trace``): the
  objective after each BCD sweep / SCA iteration of every decision;
- ``<metric>.png``: each metric versus the first varied field, mean over seeds with a
  Student-t 95% band, a line per agent (and per value of the other varied fields);
  ``trace.png``: objective versus iteration;
- ``sweep.json``: the options, task count and wall time.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

#: metrics of every env (mean per step), then QFL-v0's
STEP_METRICS = ("reward", "sum_rate_mbps", "energy_j", "deliveries")
TIME_METRICS = ("decision_time_s", "step_time_s")
QFL_METRICS = ("final_accuracy", "final_loss")
LABELS = {
    "reward": "reward / step",
    "sum_rate_mbps": "sum rate (Mbit/s)",
    "energy_j": "energy / step (J)",
    "deliveries": "deliveries / step",
    "decision_time_s": "decision time (s)",
    "step_time_s": "env step time (s)",
    "final_accuracy": "final test accuracy",
    "final_loss": "final test loss (nats)",
}
#: the iteration traces agents may put in ``last_stats``
TRACE_KEYS = ("bcd_trace", "trace")
#: thread caps for worker processes (tiny problems: threads only contend)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class SweepTask:
    """One (value combination, agent, seed) run; picklable for worker processes."""

    env_id: str
    scenario: str | None
    overrides: dict[str, Any]  # fixed overrides and this combination's values
    values: dict[str, Any]  # the varied fields' values
    agent: str
    seed: int
    episodes: int = 1
    max_steps: int | None = None


@dataclass
class SweepOptions:
    """What ``qfl-gym sweep`` runs (see module doc)."""

    env_id: str
    vary: dict[str, list[Any]]
    agents: list[str]
    seeds: list[int]
    out: Path | None = None
    scenario: str | None = None
    episodes: int = 1
    max_steps: int | None = None
    workers: int | None = None  # None: all local cores
    ray_address: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.vary:
            raise ValueError("--vary: give at least one FIELD=V1,V2,...")
        for name, values in self.vary.items():
            if not values:
                raise ValueError(f"--vary {name}: no value given")
            for part in linked_fields(name):
                if part in self.overrides:
                    raise ValueError(f"{part!r} is both varied (--vary) and fixed (--set)")
        if not self.agents:
            raise ValueError("--agents lists no agent")
        if not self.seeds:
            raise ValueError("--seeds lists no seed")
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")

    def tasks(self) -> list[SweepTask]:
        """Every combination x agent x seed, first varied field outermost."""
        names = list(self.vary)
        return [
            SweepTask(
                self.env_id,
                self.scenario,
                {**self.overrides, **combination_overrides(names, combo)},
                dict(zip(names, combo, strict=True)),
                agent,
                seed,
                self.episodes,
                self.max_steps,
            )
            for combo in itertools.product(*self.vary.values())
            for agent in self.agents
            for seed in self.seeds
        ]


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    traces: list[dict[str, Any]]
    out: Path
    files: dict[str, Path]
    wall_time_s: float


# ----------------------------------------------------------------- parsing
def linked_fields(name: str) -> list[str]:
    """``"train_shots+shots"`` -> ``["train_shots", "shots"]``: fields varied together."""
    return [part.strip() for part in name.split("+")]


def combination_overrides(names: Sequence[str], combo: Sequence[Any]) -> dict[str, Any]:
    """The env overrides of one value combination (linked fields get the same value)."""
    return {
        part: value
        for name, value in zip(names, combo, strict=True)
        for part in linked_fields(name)
    }


def split_values(text: str) -> list[str]:
    """``"1,2,(0, 1)"`` -> ``["1", "2", "(0, 1)"]``: commas inside brackets stay."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_vary(specs: Sequence[str] | None) -> dict[str, list[Any]]:
    """``["num_devices=10,50", "p_max_dbm=20,23"]`` -> ordered dict of typed values.

    Values are YAML scalars (``10`` int, ``0.5`` float, ``rician`` string, ``[0, 1]``
    list; a bracketed ``(0, 1)`` becomes a tuple). ``"train_shots+shots=1,40"`` varies
    both fields together (one column ``train_shots+shots``).
    """
    import yaml

    out: dict[str, list[Any]] = {}
    for spec in specs or []:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name or not all(linked_fields(name)):
            raise ValueError(f"--vary expects FIELD=V1,V2,... (or A+B=...), got {spec!r}")
        if name in out:
            raise ValueError(f"--vary {name!r} given twice")
        parsed = []
        for v in split_values(values):
            if v.startswith("(") and v.endswith(")"):
                parsed.append(tuple(yaml.safe_load(f"[{v[1:-1]}]")))
            else:
                parsed.append(yaml.safe_load(v))
        if not parsed:
            raise ValueError(f"--vary {name}: no value given in {spec!r}")
        out[name] = parsed
    return out


# ------------------------------------------------------------------ a task
class StepTimer(gym.Wrapper):
    """Records the wall time of every ``env.step`` call (s) in :attr:`step_times`."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.step_times: list[float] = []

    def step(self, action):
        t0 = time.perf_counter()
        out = self.env.step(action)
        self.step_times.append(time.perf_counter() - t0)
        return out


def run_sweep_task(task: SweepTask) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one task: its metrics row and its iteration-trace rows."""
    import qfl_gym  # noqa: F401  (registers the ids)
    from training_scripts.benchmark import agent_factory
    from training_scripts.rollout import run_episode

    started = time.perf_counter()
    kwargs = dict(task.overrides)
    if task.scenario is not None:
        kwargs["scenario"] = task.scenario
    env = StepTimer(gym.make(task.env_id, **kwargs))
    name, factory = agent_factory(task.agent)
    agent = factory(env)
    traces: list[dict[str, Any]] = []
    records = []
    finals: list[tuple[float, float]] = []
    for episode in range(task.episodes):

        def on_step(step: int, _episode: int = episode) -> None:
            stats = getattr(agent, "last_stats", {}) or {}
            for key in TRACE_KEYS:
                trace = stats.get(key)
                if trace:
                    traces.extend(
                        {
                            **task.values,
                            "agent": name,
                            "seed": task.seed,
                            "episode": _episode,
                            "step": step - 1,
                            "iteration": i,
                            "objective": float(v),
                        }
                        for i, v in enumerate(trace)
                    )
                    break

        rows = run_episode(env, agent, name, task.seed, episode, task.max_steps, on_step)
        records.extend(rows)
        if rows:
            finals.append((rows[-1].global_accuracy, rows[-1].global_loss))
    env.close()
    row: dict[str, Any] = {**task.values, "agent": name, "seed": task.seed}
    for metric in (*STEP_METRICS, "decision_time_s"):
        row[metric] = _mean([getattr(r, metric) for r in records])
    row["step_time_s"] = _mean(env.step_times)
    row["steps"] = len(records)
    if task.env_id.endswith("QFL-v0"):
        row["final_accuracy"] = _mean([a for a, _ in finals])
        row["final_loss"] = _mean([loss for _, loss in finals])
    row["task_wall_s"] = time.perf_counter() - started
    return row, traces


def _mean(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


# ----------------------------------------------------------------- running
def local_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_local(tasks: Sequence[SweepTask], workers: int | None = None, on_done=None) -> list:
    """Run ``tasks`` on local worker processes (in this process if ``workers == 1``)."""
    workers = min(len(tasks), workers or local_cores())
    if workers <= 1:
        out = []
        for task in tasks:
            out.append(run_sweep_task(task))
            if on_done is not None:
                on_done()
        return out
    import multiprocessing

    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))  # inherited by the spawned workers
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_sweep_task, t) for t in tasks]
            out = []
            for f in futures:
                out.append(f.result())
                if on_done is not None:
                    on_done()
            return out
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_ray(tasks: Sequence[SweepTask], address: str, on_done=None) -> list:
    """Run ``tasks`` as Ray tasks (one CPU each) on the cluster at ``address``.

    An instance this process already started (``ray.init``) is used as it is;
    otherwise ``ray.init(address=...)`` connects (and this function disconnects at
    the end). ``address="local"`` starts a local instance.
    """
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--ray-address needs Ray, which is not installed: pip install 'qfl-gym[rllib]' "
            "(or run without --ray-address on the local cores)"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(run_sweep_task)
        pending = {remote.remote(t): i for i, t in enumerate(tasks)}
        out: list[Any] = [None] * len(tasks)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                out[pending.pop(ref)] = ray.get(ref)
                if on_done is not None:
                    on_done()
        return out
    finally:
        if started:
            ray.shutdown()


def validate(opts: SweepOptions) -> None:
    """Build every combination's env once (clear errors before any work)."""
    from training_scripts.benchmark import agent_factory
    from training_scripts.train import check_env_id

    check_env_id(opts.env_id)
    for agent in opts.agents:
        agent_factory(agent)
    names = list(opts.vary)
    for combo in itertools.product(*opts.vary.values()):
        kwargs = {**opts.overrides, **combination_overrides(names, combo)}
        if opts.scenario is not None:
            kwargs["scenario"] = opts.scenario
        try:
            gym.make(opts.env_id, **kwargs).close()
        except TypeError as exc:  # an unknown field name: the user's input
            raise ValueError(str(exc)) from None


def run_sweep(
    opts: SweepOptions, progress: Callable[[int, int], None] | None = None
) -> SweepResult:
    """Run the sweep, write CSVs, figures and ``sweep.json`` (see module doc)."""
    from training_scripts.benchmark import claim_output_dir

    validate(opts)
    out = claim_output_dir(opts.out, Path("results"), "sweep")
    tasks = opts.tasks()
    done = [0]

    def on_done() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(tasks))

    t0 = time.perf_counter()
    if opts.ray_address is not None:
        results = run_ray(tasks, opts.ray_address, on_done)
    else:
        results = run_local(tasks, opts.workers, on_done)
    wall = time.perf_counter() - t0
    rows = [r for r, _ in results]
    traces = [t for _, ts in results for t in ts]
    files = {"sweep_csv": write_csv(rows, out / "sweep.csv")}
    if traces:
        files["trace_csv"] = write_csv(traces, out / "trace.csv")
    fields = list(opts.vary)
    for metric in (*STEP_METRICS, *TIME_METRICS, *QFL_METRICS):
        if any(math.isfinite(r.get(metric, math.nan)) for r in rows):
            files[metric] = plot_metric(rows, fields, metric, out / f"{metric}.png")
    if traces:
        files["trace_png"] = plot_traces(traces, fields[0], out / "trace.png")
    meta = {
        "options": {k: v for k, v in asdict(opts).items() if k != "out"},
        "tasks": len(tasks),
        "runner": f"ray:{opts.ray_address}" if opts.ray_address else "local",
        "workers": None if opts.ray_address else min(len(tasks), opts.workers or local_cores()),
        "wall_time_s": wall,
    }
    (out / "sweep.json").write_text(json.dumps(meta, indent=2, default=str))
    files["sweep_json"] = out / "sweep.json"
    return SweepResult(rows, traces, out, files, wall)


# ------------------------------------------------------------------ output
def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Rows (dicts) as CSV, columns in first-seen order."""
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def _axis(values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Numeric x positions, and tick labels when the values are not numbers."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    return list(range(len(values))), [str(v) for v in values]


def plot_metric(rows: Sequence[dict[str, Any]], fields: list[str], metric: str, path: Path):
    """``metric`` versus ``fields[0]``: mean over seeds, 95% band; a line per group."""
    from training_scripts.plots import _pyplot, save_figure
    from training_scripts.results import mean_ci95

    plt = _pyplot()
    xfield, others = fields[0], fields[1:]
    xs = list(dict.fromkeys(r[xfield] for r in rows))
    pos, ticks = _axis(xs)
    groups: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        label = ", ".join([r["agent"], *(f"{f}={r[f]}" for f in others)])
        groups[label][r[xfield]].append(r.get(metric, math.nan))
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, by_x in groups.items():
        stats = [mean_ci95(by_x[x]) if x in by_x else (math.nan, math.nan) for x in xs]
        mean = np.array([s[0] for s in stats])
        half = np.array([s[1] for s in stats])
        ax.plot(pos, mean, marker="o", label=label)
        ax.fill_between(pos, mean - half, mean + half, alpha=0.2)
    if ticks is not None:
        ax.set_xticks(pos, ticks)
    elif metric.endswith("_time_s") and min(pos) > 0 and max(pos) / min(pos) >= 20:
        ax.set_xscale("log")
    if metric.endswith("_time_s"):
        ax.set_yscale("log")
    ax.set_xlabel(xfield)
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(f"{LABELS.get(metric, metric)} vs {xfield} (mean, 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_traces(traces: Sequence[dict[str, Any]], xfield: str, path: Path) -> Path:
    """Objective versus BCD sweep / SCA iteration, per agent and ``xfield`` value.

    Each decision's trace is padded with its last value (converged) to the longest
    trace; mean over decisions and seeds with a 95% band.
    """
    from training_scripts.plots import _pyplot, save_figure
    from training_scripts.results import mean_ci95

    plt = _pyplot()
    runs: dict[tuple[str, Any], dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        key = (t["seed"], t["episode"], t["step"])
        runs[(t["agent"], t[xfield])][key].append(t["objective"])
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for (agent, value), by_decision in runs.items():
        length = max(len(v) for v in by_decision.values())
        padded = np.array([v + [v[-1]] * (length - len(v)) for v in by_decision.values()])
        stats = np.array([mean_ci95(padded[:, i]) for i in range(length)])
        it = np.arange(length)
        ax.plot(it, stats[:, 0], marker=".", label=f"{agent}, {xfield}={value}")
        ax.fill_between(it, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], alpha=0.2)
    ax.set_xlabel("iteration (QAOA: BCD sweep; SCA: iteration)")
    ax.set_ylabel("objective")
    ax.set_title("optimizer progress (mean, 95% CI over decisions and seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
