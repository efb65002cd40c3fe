"""Reproduce the reference case study on QFL-v0 (``qfl-gym case-study``): the main job.

The reference study (arXiv 2509.10559; model in arXiv 2603.01222) allocates NOMA
sub-channels and transmit powers to quantum-federated-learning devices with QAOA
(block coordinate descent over QUBO sub-problems) and compares it with successive
convex approximation (SCA) and a greedy scheme, reporting sum rate and how fast the
global model converges. This job runs that comparison on ``qfl_gym/QFL-v0``:

- agents: QAOA (BCD), SCA, greedy, random, exhaustive search where the search space is
  small enough, and a PPO policy trained in the run (or reused from an earlier run's
  cache, or given with ``--ppo-model``). The optimizers maximize ``info["problem"]``'s
  objective: the sum rate, as in the reference study; ``name@deliveries`` runs one
  with QFL-v0's ``objective="deliveries"`` instead (the expected number of updates
  delivered on time), because in this model a sum-rate optimum concentrates the rate on
  a few strong devices and does not deliver more updates;
- every agent plays the same seeded episodes of R federated rounds (identical channel
  realizations, data partitions and model initialization per seed);
- outputs, in a new folder ``results/case-study-<timestamp>/``: ``steps.csv`` (one row
  per agent, seed and round), ``summary.csv``, sum-rate and convergence figures (test
  accuracy and loss vs round with 95% confidence bands), ``report.md`` (table, figures,
  full configuration, package versions, wall times) and ``config.json``.

``--quick`` runs the ``small`` QFL-v0 preset (8 devices) instead of ``case-study``
(50 devices on 4 NOMA sub-channels).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from training_scripts import plots
from training_scripts.benchmark import claim_output_dir, new_run_dir
from training_scripts.results import (
    summarize,
    summary_table,
    write_steps_csv,
    write_summary_csv,
)
from training_scripts.rollout import run_agents

ENV_ID = "qfl_gym/QFL-v0"
#: ``name@objective`` runs an optimizer on QFL-v0 with that ``objective`` (what
#: ``info["problem"].reward`` measures): "sum-rate" (the reference study's) or
#: "deliveries" (expected timely deliveries); a bare name uses the scenario's objective.
DEFAULT_AGENTS = (
    "qaoa",
    "qaoa@deliveries",
    "sca",
    "local-search@deliveries",
    "greedy",
    "random",
    "exhaustive",
    "ppo",
)


@dataclass(frozen=True)
class CaseStudyConfig:
    """Settings of one case-study run (frozen; see :data:`CASE_STUDY_PRESETS`)."""

    scenario: str = "case-study"
    seeds: tuple[int, ...] = (0, 1, 2)
    rounds: int = 30
    agents: tuple[str, ...] = DEFAULT_AGENTS
    ppo_timesteps: int = 1200
    ppo_model: str | None = None
    exhaustive_limit: int = 2**22
    scenario_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.ppo_timesteps < 1:
            raise ValueError(f"ppo_timesteps must be >= 1, got {self.ppo_timesteps}")
        import agents
        from qfl_gym.envs.qfl_scenario import OBJECTIVES

        valid = (*agents.available(), "ppo")
        unknown = [a for a in self.agents if split_agent(a)[0] not in valid]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}; valid: {', '.join(valid)}")
        bad = [a for a in self.agents if split_agent(a)[1] not in (None, *OBJECTIVES)]
        if bad:
            raise ValueError(
                f"unknown objective in {bad}; use name@objective with objective one of "
                f"{', '.join(OBJECTIVES)}"
            )
        if not self.agents:
            raise ValueError("agents must list at least one agent")


def split_agent(spec: str) -> tuple[str, str | None]:
    """``"qaoa@deliveries"`` -> ``("qaoa", "deliveries")``; ``"sca"`` -> ``("sca", None)``."""
    name, _, objective = spec.partition("@")
    return name, objective or None


CASE_STUDY_PRESETS: dict[str, CaseStudyConfig] = {
    # The reference scale: 50 devices, 4 NOMA sub-channels, 30 rounds, 3 seeds.
    "full": CaseStudyConfig(),
    # The small QFL-v0 preset (8 devices): about a minute on 2 cores.
    "quick": CaseStudyConfig(scenario="small", ppo_timesteps=1200),
}


@dataclass
class CaseStudyResult:
    """Where the case study wrote its artifacts and what it measured."""

    out: Path
    summaries: list
    files: dict[str, Path]
    wall_times_s: dict[str, float]
    notes: list[str]


def _ppo_cache_key(cfg: CaseStudyConfig, env_kwargs: dict[str, Any]) -> str:
    """A stable key of what determines the trained PPO policy."""
    from training_scripts.zoo_config import default_config_file

    blob = json.dumps(
        {
            "env": ENV_ID,
            "env_kwargs": env_kwargs,
            "timesteps": cfg.ppo_timesteps,
            "hyperparams": default_config_file("ppo").read_text(),
            "version": _version("qfl-gym"),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def train_or_reuse_ppo(
    cfg: CaseStudyConfig, env_kwargs: dict[str, Any], cache_dir: Path, notes: list[str]
) -> Path:
    """Path of a PPO model for the case study: given, cached from an earlier run, or new.

    A newly trained model goes to a fresh folder in ``cache_dir`` (never overwriting);
    later runs with the same scenario, budget and hyperparameters reuse it.
    """
    from training_scripts.train import TrainOptions, train

    if cfg.ppo_model is not None:
        if not Path(cfg.ppo_model).is_file():
            raise ValueError(f"--ppo-model {cfg.ppo_model!r} does not exist")
        notes.append(f"PPO: the given model {cfg.ppo_model}.")
        return Path(cfg.ppo_model)
    key = _ppo_cache_key(cfg, env_kwargs)
    cached = Path(cache_dir) / f"ppo-{key}" / "model.zip"
    if cached.is_file():
        notes.append(
            f"PPO: reused the policy an earlier run trained ({cfg.ppo_timesteps} steps, "
            f"cache {cached.parent})."
        )
        return cached
    result = train(
        TrainOptions(
            algo="ppo",
            env_id=ENV_ID,
            out=cached.parent,
            timesteps=cfg.ppo_timesteps,
            seed=12345,
            n_envs=2,
            eval_freq=10**9,  # no periodic evaluation: the case study evaluates it
            checkpoint_freq=10**9,
            progress_bar=True,
            env_overrides=env_kwargs,
        )
    )
    notes.append(
        f"PPO: trained in this run for {result.num_timesteps} environment steps "
        f"(rounds) with the bundled hyperparameters (cached in {cached.parent})."
    )
    return result.model_path


def _agent_factories(
    cfg: CaseStudyConfig, probe_env, ppo_path: Path | None, notes: list[str]
) -> dict[str, Callable]:
    import agents

    problem = probe_env.unwrapped.problem
    factories: dict[str, Callable] = {}
    for spec in cfg.agents:
        name = split_agent(spec)[0]
        if name == "exhaustive":
            size = problem.num_assignments
            if size > cfg.exhaustive_limit:
                options = problem.num_subchannels * problem.num_power_levels
                notes.append(
                    f"exhaustive: skipped, (N*L)^K = {options}^{problem.num_devices} = "
                    f"{float(size):.3g} assignments exceed the limit {cfg.exhaustive_limit:,}."
                )
                continue
            factories[spec] = lambda env: agents.make(
                "exhaustive", env, max_assignments=cfg.exhaustive_limit
            )
        elif name == "ppo":
            path = ppo_path
            factories[spec] = lambda env, _p=path: agents.make("sb3", env, path=str(_p))
        else:
            factories[spec] = lambda env, _n=name: agents.make(_n, env)
    return factories


def run_case_study(
    cfg: CaseStudyConfig,
    out: Path | None = None,
    results_base: Path = Path("results"),
    progress: Callable[[str, int, int, int], None] | None = None,
    command: str | None = None,
) -> CaseStudyResult:
    """Run the case study and write its artifacts (see the module docstring)."""
    import gymnasium as gym

    import qfl_gym

    assert qfl_gym
    t_start = time.perf_counter()
    env_kwargs = {"scenario": cfg.scenario, "rounds": cfg.rounds, **cfg.scenario_overrides}
    probe = gym.make(ENV_ID, **env_kwargs)  # validates the scenario before any work
    probe.reset(seed=cfg.seeds[0])
    out = (
        claim_output_dir(out, results_base, "case-study")
        if out
        else new_run_dir(results_base, "case-study")
    )
    notes: list[str] = []
    walls: dict[str, float] = {}
    ppo_path = None
    if any(split_agent(a)[0] == "ppo" for a in cfg.agents):
        t = time.perf_counter()
        ppo_path = train_or_reuse_ppo(cfg, env_kwargs, Path(results_base) / ".ppo-cache", notes)
        walls["ppo training"] = time.perf_counter() - t
    factories = _agent_factories(cfg, probe, ppo_path, notes)
    for factory in factories.values():  # fail fast (mismatched spaces etc.)
        factory(probe)
    t = time.perf_counter()
    rows = []
    for objective in dict.fromkeys(split_agent(a)[1] for a in factories):
        group = {a: f for a, f in factories.items() if split_agent(a)[1] == objective}
        kwargs = env_kwargs if objective is None else {**env_kwargs, "objective": objective}
        rows += run_agents(
            lambda _k=kwargs: gym.make(ENV_ID, **_k), group, cfg.seeds, 1, None, progress
        )
    walls["evaluation"] = time.perf_counter() - t
    order = {a: i for i, a in enumerate(cfg.agents)}
    summaries = sorted(summarize(rows), key=lambda s: order[s.agent])
    files = {
        "steps_csv": out / "steps.csv",
        "summary_csv": out / "summary.csv",
        "config_json": out / "config.json",
        "report_md": out / "report.md",
    }
    write_steps_csv(rows, files["steps_csv"])
    write_summary_csv(summaries, files["summary_csv"])
    title = f"QFL-v0 '{cfg.scenario}'"
    files["sum_rate_png"] = plots.plot_metric_bars(
        summaries,
        "sum_rate_mbps",
        "sum rate (Mbit/s)",
        out / "sum_rate.png",
        f"{title}: mean sum rate per round (95% CI)",
    )
    for metric, label in (
        ("global_accuracy", "test accuracy"),
        ("global_loss", "test loss"),
        ("deliveries", "updates delivered"),
    ):
        png = plots.plot_curves(rows, metric, label, out / f"{metric}.png", f"{title}: {label}")
        if png is not None:
            files[f"{metric}_png"] = png
    walls["total"] = time.perf_counter() - t_start
    scenario = probe.unwrapped.scenario
    config = {
        "case_study": {**asdict(cfg), "seeds": list(cfg.seeds), "agents": list(cfg.agents)},
        "env_id": ENV_ID,
        "env_kwargs": env_kwargs,
        "scenario": scenario.to_dict(),
    }
    files["config_json"].write_text(json.dumps(config, indent=2, default=str))
    files["report_md"].write_text(
        render_report(cfg, summaries, files, walls, notes, config, command)
    )
    probe.close()
    return CaseStudyResult(out, summaries, files, walls, notes)


def render_report(
    cfg: CaseStudyConfig,
    summaries: Sequence,
    files: dict[str, Path],
    walls: dict[str, float],
    notes: Sequence[str],
    config: dict[str, Any],
    command: str | None,
) -> str:
    """The markdown report of a case-study run."""
    import datetime as _dt
    import os

    from training_scripts.train import package_versions

    scenario = config["scenario"]
    up = scenario["uplink"]
    lines = [
        f"# QFL case study on QFL-v0 (`{cfg.scenario}`)",
        "",
        f"- date: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs",
        f"- command: `{command or 'qfl-gym case-study'}`",
        "- wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items()),
        f"- scenario: K={up['num_devices']} devices, N={up['num_subchannels']} NOMA "
        f"sub-channels, L={up['num_power_levels']} power levels, SIC residual "
        f"{up['sic_residual']}, {scenario['rounds']} rounds, deadline {scenario['deadline_s']} s, "
        f"seeds {list(cfg.seeds)}",
        "",
        "## Results",
        "",
        "Mean over seeds with 95% confidence intervals (Student t). Sum rate, energy and "
        "deliveries are per round; accuracy and loss are the global model's after the "
        "last round; decision time is the median per round.",
        "",
        summary_table(summaries, markdown=True),
        "",
    ]
    for key, caption in (
        ("sum_rate_png", "Sum rate per agent"),
        ("global_accuracy_png", "Test accuracy vs round"),
        ("global_loss_png", "Test loss vs round"),
        ("deliveries_png", "Updates delivered per round"),
    ):
        if key in files:
            lines += [f"![{caption}]({files[key].name})", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Configuration",
        "",
        "```json",
        json.dumps(config, indent=2, default=str),
        "```",
        "",
        "## Package versions",
        "",
        *[f"- {k}: {v}" for k, v in package_versions().items()],
        "",
    ]
    return "\n".join(lines)


def preset(name: str, **changes: Any) -> CaseStudyConfig:
    """A case-study preset with ``changes`` (None values are ignored)."""
    if name not in CASE_STUDY_PRESETS:
        raise ValueError(
            f"unknown case-study preset {name!r}; valid: {', '.join(CASE_STUDY_PRESETS)}"
        )
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(CASE_STUDY_PRESETS[name], **changes)


def command_line() -> str:
    """The command that started this process, for the report."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def fmt_seconds(value: float) -> str:
    """``75.3`` -> ``'1 min 15 s'``."""
    if not math.isfinite(value):
        return "n/a"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
