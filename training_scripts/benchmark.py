"""Benchmark agents side by side on one environment (``qfl-gym benchmark``).

Every agent plays the same seeded episodes (identical channel realizations per seed).
Writes ``steps.csv`` (one row per agent, seed, episode and step), ``summary.csv`` and
``summary.txt`` (mean and 95% confidence interval over episodes), and PNG plots: sum
rate per agent, global accuracy and loss vs round (QFL-v0), decision time vs problem
size.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training_scripts import plots
from training_scripts.results import (
    AgentSummary,
    summarize,
    summary_table,
    write_steps_csv,
    write_summary_csv,
)
from training_scripts.rollout import StepRecord, run_agents

SCALING_ENV = "qfl_gym/ChannelPower-v0"


@dataclass
class BenchmarkOptions:
    """Options of ``qfl-gym benchmark``."""

    env_id: str
    agents: Sequence[str]
    seeds: Sequence[int] = (0, 1, 2)
    episodes: int = 1
    scenario: str | None = None
    max_steps: int | None = None
    out: Path | None = None
    scaling_sizes: Sequence[int] = (4, 8, 16, 32)
    env_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchmarkResult:
    """Where the benchmark wrote its artifacts and what it measured."""

    out: Path
    rows: list[StepRecord]
    summaries: list[AgentSummary]
    files: dict[str, Path]


def new_run_dir(base: Path, prefix: str) -> Path:
    """A fresh folder ``base/<prefix>-<timestamp>[-n]``; never an existing one."""
    base = Path(base)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = base / (f"{prefix}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise ValueError(f"cannot create {str(path)!r}: {exc.strerror or exc}") from exc
    raise ValueError(f"could not find a free folder name under {base}")


def claim_output_dir(out: Path | None, default_base: Path, prefix: str) -> Path:
    """``out`` if it is new or empty, else a clear error; a fresh folder if ``None``."""
    if out is None:
        return new_run_dir(default_base, prefix)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(
            f"--out {str(out)!r} already exists and is not an empty folder; choose a new one "
            "(nothing is overwritten)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").write_text("")
        (out / ".write-test").unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from exc
    return out


def agent_factory(spec: str, **agent_kwargs: Any) -> tuple[str, Callable[[Any], Any]]:
    """``"greedy"``, ``"sb3:path/model.zip"``, ``"device-policy:weights.pt"`` or
    ``"pretrained:ppo"`` (a method) -> (display name, ``factory(env)``)."""
    import agents

    name, _, arg = spec.partition(":")
    if name not in agents.available():
        raise ValueError(f"unknown agent {name!r}; valid: {', '.join(agents.available())}")
    if name == "sb3":
        if not arg:
            raise ValueError("the sb3 agent needs a model path: sb3:<path/to/model.zip>")
        if not Path(arg).is_file():
            raise ValueError(f"model file {arg!r} does not exist")
        return f"sb3:{Path(arg).stem}", lambda env: agents.make("sb3", env, path=arg)
    if name == "device-policy" and arg:  # device-policy:<weights .pt or PPO zip>
        if not Path(arg).is_file():
            raise ValueError(f"weights file {arg!r} does not exist")
        return f"device-policy:{Path(arg).stem}", lambda env: agents.make(name, env, path=arg)
    if name == "pretrained" and arg:  # pretrained:<method>, e.g. pretrained:ppo
        return spec, lambda env: agents.make(name, env, method=arg, **agent_kwargs)
    if arg:
        raise ValueError(f"agent {name!r} takes no ':' argument (got {spec!r})")
    return name, lambda env: agents.make(name, env, **agent_kwargs)


def make_env_factory(env_id: str, scenario: str | None, overrides: dict[str, Any]):
    """A zero-argument env constructor; validates id, scenario and overrides now."""
    import gymnasium as gym

    import qfl_gym
    from training_scripts.train import check_env_id

    check_env_id(env_id)
    kwargs = dict(overrides)
    if scenario is not None:
        kwargs["scenario"] = scenario
    gym.make(env_id, **kwargs).close()
    assert qfl_gym  # registered
    return lambda: gym.make(env_id, **kwargs)


def decision_time_scaling(
    factories: dict[str, Callable[[Any], Any]], sizes: Sequence[int], base_env, repeats: int = 3
) -> list[dict[str, Any]]:
    """Median decision time of each agent on ChannelPower-v0 with K devices.

    N and L are those of ``base_env``'s scenario. Agents that refuse a size (exhaustive
    beyond its limit, a policy trained for another K) are skipped for that size.
    """
    import gymnasium as gym

    cfg = base_env.unwrapped.config
    rows = []
    for k in sizes:
        env = gym.make(
            SCALING_ENV,
            num_devices=int(k),
            num_subchannels=cfg.num_subchannels,
            num_power_levels=cfg.num_power_levels,
            sic_residual=cfg.sic_residual,
        )
        for name, factory in factories.items():
            try:
                agent = factory(env)
                times = []
                for r in range(repeats):
                    obs, info = env.reset(seed=10_000 + r)
                    agent.reset(seed=r)
                    agent.act(obs, info)
                    times.append(agent.last_stats["decision_time_s"])
            except ValueError:
                continue
            rows.append(
                {
                    "agent": name,
                    "num_devices": int(k),
                    "median_decision_time_s": float(np.median(times)),
                }
            )
        env.close()
    return rows


def run_benchmark(
    opts: BenchmarkOptions,
    progress: Callable[[str, int, int, int], None] | None = None,
    results_base: Path = Path("results"),
) -> BenchmarkResult:
    """Run the benchmark and write its artifacts; see the module docstring."""
    if opts.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {opts.episodes}")
    if not opts.seeds:
        raise ValueError("--seeds must list at least one seed")
    if opts.max_steps is not None and opts.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {opts.max_steps}")
    if not opts.agents:
        raise ValueError("--agents must list at least one agent")
    make_env = make_env_factory(opts.env_id, opts.scenario, opts.env_overrides)
    factories = dict(agent_factory(spec) for spec in opts.agents)
    probe = make_env()
    for factory in factories.values():  # fail fast on mismatched spaces etc.
        factory(probe)
    out = claim_output_dir(opts.out, results_base, "benchmark")
    start = time.perf_counter()
    rows = run_agents(make_env, factories, opts.seeds, opts.episodes, opts.max_steps, progress)
    summaries = summarize(rows)
    files = {
        "steps_csv": out / "steps.csv",
        "summary_csv": out / "summary.csv",
        "summary_txt": out / "summary.txt",
    }
    write_steps_csv(rows, files["steps_csv"])
    write_summary_csv(summaries, files["summary_csv"])
    env_name = opts.env_id.split("/")[-1]
    files["sum_rate_png"] = plots.plot_metric_bars(
        summaries,
        "sum_rate_mbps",
        "sum rate (Mbit/s)",
        out / "sum_rate.png",
        f"{env_name}: mean sum rate (95% CI)",
    )
    for metric, label in (("global_accuracy", "test accuracy"), ("global_loss", "test loss")):
        png = plots.plot_curves(rows, metric, label, out / f"{metric}.png", f"{env_name}: {label}")
        if png is not None:
            files[f"{metric}_png"] = png
    if opts.scaling_sizes:
        scaling = decision_time_scaling(factories, opts.scaling_sizes, probe)
        png = plots.plot_decision_time(scaling, out / "decision_time.png")
        if png is not None:
            files["decision_time_png"] = png
    probe.close()
    table = summary_table(summaries)
    files["summary_txt"].write_text(
        f"{opts.env_id} scenario={opts.scenario or 'default'} seeds={list(opts.seeds)} "
        f"episodes={opts.episodes} wall={time.perf_counter() - start:.1f}s\n{table}\n"
    )
    return BenchmarkResult(out, rows, summaries, files)
