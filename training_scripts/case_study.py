"""Reproduce the reference case study on QFL-v0 (``qfl-gym case-study``): the main job.

The reference study (arXiv 2509.10559; model in arXiv 2603.01222) allocates NOMA
sub-channels and transmit powers to quantum-federated-learning devices with QAOA
(block coordinate descent over QUBO sub-problems), compares it with successive convex
approximation (SCA) and a greedy scheme, and reports that QAOA's allocation makes the
global model converge faster. This job runs that comparison on ``qfl_gym/QFL-v0``
(default scenario ``case-study-full``: 50 devices, 4 sub-channels, 30 rounds) under
each participation model:

- ``full`` (the study's): every update is aggregated; the allocation sets how long a
  round lasts (the slowest upload), so "converges faster" is accuracy versus simulated
  wall-clock time;
- ``deadline``: a round lasts a fixed period and only updates uploaded within the
  deadline (and without packet error) are aggregated; the allocation sets who is heard.

Agents: QAOA (BCD), SCA, local search, greedy, random, exhaustive search where the
space is small enough, a PPO policy with SB3's MLP (trained in the run, reused from the
cache, or given) and ``pretrained``: the shipped device-permutation-equivariant policy
for the scenario (:mod:`agents.pretrained`; autoregressive head, trained on
ChannelPower-v0 at K = 10 on the objective the participation model counts, then PPO at
K = 50). A bare optimizer name
maximizes the objective that matches the participation model
(:data:`MATCHING_OBJECTIVE`: the round time under full participation, expected timely
deliveries under the deadline model); ``name@objective`` fixes one (``qaoa@sum-rate``,
``sca@sum-rate``: the study's sum rate).

Statistics: every agent plays the same seeds (one
:class:`~qfl_gym.vector.qfl.QFLVectorEnv` sub-env per seed: same device drops, data
partition, model initialization and channel draws; :mod:`.batched_rollout` checks it
with a fingerprint per seed), and every metric is reported as the mean per-seed
difference against a baseline agent (default ``random``) with a 95% t interval
(:mod:`.paired_stats`). A "perfect uplink" reference (every update delivered at once:
packet errors off, a negligible update size, the same seeds) shows the ceiling.

Outputs, in a new folder ``results/case-study-<timestamp>/``: ``report.md`` and
``config.json``, and one sub-folder per participation model with ``steps.csv``,
``summary.csv``, ``paired.csv`` (columns ``agent, baseline, metric, mean_diff, ci_low,
ci_high, n_seeds``) and figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
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
from training_scripts.paired_stats import (
    EPISODE_METRICS,
    METRICS_BY_KEY,
    PairedDifference,
    episode_metrics,
    paired_differences,
    reached_counts,
    write_paired_csv,
)
from training_scripts.results import (
    summarize,
    summary_table,
    write_steps_csv,
    write_summary_csv,
)

ENV_ID = "qfl_gym/QFL-v0"
#: Name of the agent-independent reference run in tables and ``paired.csv``.
PERFECT_UPLINK = "perfect-uplink"
#: Objective an optimizer named without ``@objective`` maximizes, per participation
#: model (used only when QFL-v0 offers it; else the scenario's own objective).
MATCHING_OBJECTIVE = {"full": "round-time", "deadline": "deliveries"}
#: ``name@objective`` runs an optimizer with that ``objective``; a bare name uses the
#: participation model's matching objective (see the module docstring).
DEFAULT_AGENTS = (
    "qaoa",
    "qaoa@sum-rate",
    "sca",
    "sca@sum-rate",
    "local-search",
    "greedy",
    "random",
    "exhaustive",
    "ppo",
    "pretrained",
)
#: Metrics the report spells out in words (the noise-robust headline ones first).
HEADLINE_METRICS = ("rounds_to_target", "time_to_target_s", "loss_auc", "final_accuracy")
#: Default share of the perfect-uplink run's mean final accuracy used as the target.
TARGET_FRACTION = 0.9


@dataclass(frozen=True)
class CaseStudyConfig:
    """Settings of one case-study run (frozen; see :data:`CASE_STUDY_PRESETS`).

    ``target_accuracy`` None: :data:`TARGET_FRACTION` of the perfect-uplink run's mean
    final accuracy (per participation model), rounded down to 0.01.
    ``participation``: the models to run (each as the override ``participation=...``;
    empty: the scenario's own). ``workers``: processes running agents in parallel.
    """

    scenario: str = "case-study-full"
    seeds: tuple[int, ...] = tuple(range(10))
    rounds: int = 30
    agents: tuple[str, ...] = DEFAULT_AGENTS
    baseline: str = "random"
    target_accuracy: float | None = None
    participation: tuple[str, ...] = ("full",)
    perfect_uplink: bool = True
    workers: int = 2
    ppo_timesteps: int = 1200
    ppo_model: str | None = None
    exhaustive_limit: int = 2**22
    scenario_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must not repeat, got {list(self.seeds)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.ppo_timesteps < 1:
            raise ValueError(f"ppo_timesteps must be >= 1, got {self.ppo_timesteps}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in (0, 1], got {self.target_accuracy}")
        if not self.agents:
            raise ValueError("agents must list at least one agent")
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
        if self.baseline not in self.agents:
            raise ValueError(
                f"baseline {self.baseline!r} must be one of the agents run: "
                f"{', '.join(self.agents)}"
            )
        from qfl_gym.envs import qfl_scenario as qs

        models = getattr(qs, "PARTICIPATION", ())
        wrong = [p for p in self.participation if p not in models]
        if wrong:
            raise ValueError(
                f"unknown participation model(s) {wrong}; valid: {', '.join(models) or 'none'}"
            )


def split_agent(spec: str) -> tuple[str, str | None]:
    """``"qaoa@deliveries"`` -> ``("qaoa", "deliveries")``; ``"sca"`` -> ``("sca", None)``."""
    name, _, objective = spec.partition("@")
    return name, objective or None


CASE_STUDY_PRESETS: dict[str, CaseStudyConfig] = {
    # The reference scale: 50 devices, 4 NOMA sub-channels, 30 rounds, 10 seeds, full
    # participation (--participation full,deadline adds the deadline model).
    "full": CaseStudyConfig(),
    # The small QFL-v0 preset (8 devices), 5 seeds: well under a minute on 2 cores.
    "quick": CaseStudyConfig(scenario="small", seeds=tuple(range(5)), ppo_timesteps=1200),
}


@dataclass
class ModelResult:
    """What one participation model's part of the run measured and wrote."""

    participation: str
    summaries: list
    paired: list[PairedDifference]
    #: ``{agent: {metric: {seed: value}}}``, rounds/time to target censored at the horizon
    per_seed: dict[str, dict[str, dict[int, float]]]
    target_accuracy: float | None
    files: dict[str, Path]
    paired_ok: bool
    scenario: dict[str, Any]
    #: per agent: (seeds that reached the target accuracy, seeds run)
    reached: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class CaseStudyResult:
    """Where the case study wrote its artifacts and what it measured."""

    out: Path
    models: list[ModelResult]
    files: dict[str, Path]
    wall_times_s: dict[str, float]
    notes: list[str]

    @property
    def summaries(self) -> list:
        """The first participation model's per-agent summaries."""
        return self.models[0].summaries if self.models else []


# --------------------------------------------------------------------------- PPO
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
    cfg: CaseStudyConfig,
    env_kwargs: dict[str, Any],
    cache_dir: Path,
    notes: list[str],
    progress_bar: bool = True,
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
            progress_bar=progress_bar,
            env_overrides=env_kwargs,
        )
    )
    notes.append(
        f"PPO: trained in this run for {result.num_timesteps} environment steps "
        f"(rounds) with the bundled hyperparameters (cached in {cached.parent})."
    )
    return result.model_path


# ------------------------------------------------------------------------ jobs
@dataclass(frozen=True)
class AgentJob:
    """One agent (or the perfect-uplink reference) on every seed of one model."""

    participation: str
    label: str
    name: str
    env_kwargs: dict[str, Any]
    seeds: tuple[int, ...]
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    #: for ``ppo`` without a model: the run's config and cache folder (trained in the job)
    ppo_config: CaseStudyConfig | None = None
    ppo_cache: str | None = None


def make_agent_factory(name: str, agent_kwargs: dict[str, Any]) -> Callable:
    """``env -> Agent`` for a registered agent, ``"ppo"`` (an SB3 zip) or the reference."""
    import agents

    if name == PERFECT_UPLINK:
        return FixedAllocation
    if name == "ppo":
        return lambda env: agents.make("sb3", env, **agent_kwargs)
    return lambda env: agents.make(name, env, **agent_kwargs)


def run_job(job: AgentJob, on_round: Callable[[int], None] | None = None, in_worker=False):
    """Run ``job`` (in this process or a worker): rows, fingerprints, notes, wall time (s).

    A ``ppo`` job first trains its policy (or reuses the cached one).
    """
    from training_scripts.batched_rollout import run_agent_on_seeds

    t = time.perf_counter()
    notes: list[str] = []
    kwargs = dict(job.agent_kwargs)
    if job.name == "ppo" and "path" not in kwargs:
        train_kwargs = {k: v for k, v in job.env_kwargs.items() if k != "objective"}
        path = train_or_reuse_ppo(
            job.ppo_config, train_kwargs, Path(job.ppo_cache), notes, not in_worker
        )
        notes = [f"{job.participation}: {n}" for n in notes]
        kwargs["path"] = str(path)
    rows, fingerprints = run_agent_on_seeds(
        job.env_kwargs,
        make_agent_factory(job.name, kwargs),
        job.label,
        job.seeds,
        on_round,
    )
    return rows, fingerprints, notes, time.perf_counter() - t


def _run_job_in_worker(job: AgentJob):
    return run_job(job, None, in_worker=True)


class FixedAllocation:
    """The perfect-uplink reference's action: devices round-robin over the sub-channels
    at the highest power level (with a negligible update and no packet errors every
    device with a positive rate delivers at once)."""

    def __init__(self, env) -> None:
        import numpy as np

        from agents.base import unwrap_codec

        codec = unwrap_codec(env)
        cfg = env.unwrapped.config
        K, N, L = cfg.num_devices, cfg.num_subchannels, cfg.num_power_levels
        self._action = codec.encode(np.arange(K) % N, np.full(K, L - 1))
        self.last_stats: dict[str, Any] = {}

    def reset(self, seed: int | None = None) -> None:
        self.last_stats = {}

    def act(self, observation, info=None):
        self.last_stats = {"decision_time_s": math.nan}
        return self._action


def perfect_uplink_overrides(scenario) -> dict[str, Any]:
    """QFL-v0 overrides under which every update arrives at once: no packet errors, a
    1-bit update and (deadline model) a deadline equal to the round period."""
    out: dict[str, Any] = {"packet_errors": False, "update_bits": 1.0}
    if getattr(scenario, "participation", "deadline") != "full":
        out["deadline_s"] = scenario.uplink.slot_s
    return out


def _objectives() -> tuple[str, ...]:
    from qfl_gym.envs.qfl_scenario import OBJECTIVES

    return tuple(OBJECTIVES)


def _env_kwargs_for(
    cfg: CaseStudyConfig, participation: str | None, objective: str | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"scenario": cfg.scenario, "rounds": cfg.rounds}
    if participation is not None:
        kwargs["participation"] = participation
    kwargs.update(cfg.scenario_overrides)
    if objective is None and participation is not None:
        matching = MATCHING_OBJECTIVE.get(participation)
        if matching in _objectives() and "objective" not in cfg.scenario_overrides:
            objective = matching
    if objective is not None:
        kwargs["objective"] = objective
    return kwargs


def _jobs_for_model(
    cfg: CaseStudyConfig,
    participation: str | None,
    ppo_cache: Path,
    problem,
    notes: list[str],
) -> list[AgentJob]:
    label = participation or "scenario"
    jobs = []
    for spec in cfg.agents:
        name, objective = split_agent(spec)
        kwargs: dict[str, Any] = {}
        if name == "exhaustive":
            size = problem.num_assignments
            if size > cfg.exhaustive_limit:
                options = problem.num_subchannels * problem.num_power_levels
                note = (
                    f"exhaustive: skipped, (N*L)^K = {options}^{problem.num_devices} = "
                    f"{float(size):.3g} assignments exceed the limit {cfg.exhaustive_limit:,}."
                )
                if note not in notes:
                    notes.append(note)
                continue
            kwargs["max_assignments"] = cfg.exhaustive_limit
        if name == "ppo" and cfg.ppo_model is not None:
            if not Path(cfg.ppo_model).is_file():
                raise ValueError(f"--ppo-model {cfg.ppo_model!r} does not exist")
            kwargs["path"] = str(cfg.ppo_model)
        jobs.append(
            AgentJob(
                label,
                spec,
                name,
                _env_kwargs_for(cfg, participation, objective),
                tuple(cfg.seeds),
                kwargs,
                cfg if name == "ppo" else None,
                str(ppo_cache) if name == "ppo" else None,
            )
        )
    if cfg.perfect_uplink:
        from qfl_gym.envs.qfl_scenario import qfl_scenario

        env_kwargs = _env_kwargs_for(cfg, participation, None)
        sc = qfl_scenario(**env_kwargs)
        over = perfect_uplink_overrides(sc)
        jobs.append(
            AgentJob(label, PERFECT_UPLINK, PERFECT_UPLINK, {**env_kwargs, **over}, cfg.seeds)
        )
    return jobs


def _run_jobs(
    jobs: Sequence[AgentJob],
    workers: int,
    progress: Callable[[str, int, int, int], None] | None,
) -> list[tuple[AgentJob, list, dict[int, str], list[str], float]]:
    """Every job, in parallel processes when ``workers > 1``, results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        out = []
        for job in jobs:
            cb = None
            if progress is not None:

                def cb(step, _j=job):
                    progress(f"{_j.participation}: {_j.label}", _j.seeds[0], 0, step)

            out.append((job, *run_job(job, cb)))
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # longest first: PPO and the device policy (training on first use), QAOA (decisions)
    rank = {"ppo": 0, "device-policy": 0, "qaoa": 1}
    order = sorted(range(len(jobs)), key=lambda i: (rank.get(jobs[i].name, 2), i))
    results: dict[int, tuple] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_job_in_worker, jobs[i]): i for i in order}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            results[i] = (jobs[i], *future.result())
            if progress is not None:
                job = jobs[i]
                progress(
                    f"{job.participation}: {job.label} done ({done}/{len(jobs)} jobs)",
                    job.seeds[-1],
                    0,
                    0,
                )
    return [results[i] for i in range(len(jobs))]


# ------------------------------------------------------------------------ run
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
    models: list[str | None] = list(cfg.participation) or [None]
    probes = {}
    for p in models:  # validates every scenario before any work
        probe = gym.make(ENV_ID, **_env_kwargs_for(cfg, p, None))
        probe.reset(seed=cfg.seeds[0])
        probes[p] = probe
    out = (
        claim_output_dir(out, results_base, "case-study")
        if out
        else new_run_dir(results_base, "case-study")
    )
    notes: list[str] = []
    walls: dict[str, float] = {}
    jobs = []
    cache = Path(results_base) / ".ppo-cache"
    for p in models:
        jobs += _jobs_for_model(cfg, p, cache, probes[p].unwrapped.problem, notes)
    t = time.perf_counter()
    finished = _run_jobs(jobs, cfg.workers, progress)
    walls["agents (parallel)" if cfg.workers > 1 else "agents"] = time.perf_counter() - t
    for job, _, _, job_notes, seconds in finished:
        walls[f"{job.participation}: {job.label}"] = seconds
        notes += job_notes
    results = []
    for p in models:
        label = p or "scenario"
        part = [f for f in finished if f[0].participation == label]
        sc = probes[p].unwrapped.scenario
        results.append(_analyse_model(cfg, label, part, out / label, sc, notes))
    walls["total"] = time.perf_counter() - t_start
    walls["CPU time, all processes"] = _cpu_seconds()
    config = {
        "case_study": {
            **asdict(cfg),
            "seeds": list(cfg.seeds),
            "agents": list(cfg.agents),
            "participation": list(cfg.participation),
        },
        "env_id": ENV_ID,
        "scenarios": {r.participation: r.scenario for r in results},
    }
    files = {"config_json": out / "config.json", "report_md": out / "report.md"}
    files["config_json"].write_text(json.dumps(config, indent=2, default=str))
    files["report_md"].write_text(render_report(cfg, results, out, walls, notes, config, command))
    for probe in probes.values():
        probe.close()
    return CaseStudyResult(out, results, files, walls, notes)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (s): on a shared
    machine a steadier measure of the work than the wall time."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _analyse_model(
    cfg: CaseStudyConfig,
    label: str,
    finished: Sequence[tuple[AgentJob, list, dict[int, str], list[str], float]],
    folder: Path,
    scenario,
    notes: list[str],
) -> ModelResult:
    """Statistics, CSVs and figures of one participation model."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rows = [r for f in finished for r in f[1]]
    fingerprints = [f[2] for f in finished]
    paired_ok = all(fp == fingerprints[0] for fp in fingerprints)
    if not paired_ok:
        notes.append(
            f"{label}: WARNING: the agents did not see identical data/initialization/"
            "channels per seed; the differences are not paired."
        )
    target = cfg.target_accuracy
    if target is None:
        finals = [
            r.global_accuracy
            for r in rows
            if r.agent == PERFECT_UPLINK and r.step == cfg.rounds - 1
        ]
        source = finals or [r.global_accuracy for r in rows if r.step == cfg.rounds - 1]
        target = (
            math.floor(100 * TARGET_FRACTION * float(np.mean(source))) / 100 if source else None
        )
    per_seed = episode_metrics(rows, target)
    reached = reached_counts(per_seed)
    censor_to_horizon(per_seed, rows, cfg.rounds)
    metrics = [
        m.key
        for m in EPISODE_METRICS
        if any(
            math.isfinite(v) for agent in per_seed.values() for v in agent.get(m.key, {}).values()
        )
    ]
    paired = paired_differences(per_seed, cfg.baseline, metrics)
    order = {a: i for i, a in enumerate([*cfg.agents, PERFECT_UPLINK])}
    summaries = sorted(summarize(rows), key=lambda s: order.get(s.agent, len(order)))
    files = {
        "steps_csv": folder / "steps.csv",
        "summary_csv": folder / "summary.csv",
        "paired_csv": folder / "paired.csv",
    }
    write_steps_csv(rows, files["steps_csv"])
    write_summary_csv(summaries, files["summary_csv"])
    write_paired_csv(paired, files["paired_csv"])
    title = f"QFL-v0 '{cfg.scenario}', {label} participation"
    curves = (
        ("global_accuracy", "test accuracy"),
        ("global_loss", "test loss"),
        ("deliveries", "updates aggregated per round"),
    )
    for metric, ylabel in curves:
        png = plots.plot_curves(
            rows,
            metric,
            ylabel,
            folder / f"{metric}.png",
            f"{title}: {ylabel}",
            reference=PERFECT_UPLINK,
            target=target if metric == "global_accuracy" else None,
        )
        if png is not None:
            files[f"{metric}_png"] = png
    if any(math.isfinite(r.wall_time_s) for r in rows):
        png = plots.plot_curves(
            rows,
            "global_accuracy",
            "test accuracy",
            folder / "accuracy_vs_time.png",
            f"{title}: accuracy vs simulated time",
            reference=PERFECT_UPLINK,
            target=target,
            x="wall_time_s",
        )
        if png is not None:
            files["accuracy_vs_time_png"] = png
    shown = [
        m
        for m in (*HEADLINE_METRICS, "sum_rate_mbps", "deliveries", "round_time_s")
        if m in metrics and _varies(paired, m)
    ]
    files["paired_png"] = plots.plot_paired(
        paired, shown, folder / "paired.png", f"{title}: difference to {cfg.baseline} (95% CI)"
    )
    return ModelResult(
        label, summaries, paired, per_seed, target, files, paired_ok, scenario.to_dict(), reached
    )


def _varies(paired: Sequence[PairedDifference], metric: str) -> bool:
    """False when every agent's difference in ``metric`` is exactly 0 (e.g. the round
    duration under the deadline model): nothing to plot."""
    return any(d.mean_diff != 0.0 or d.ci_low != d.ci_high for d in paired if d.metric == metric)


def censor_to_horizon(per_seed: dict, rows: Sequence, rounds: int) -> None:
    """Seeds that never reached the target: ``rounds + 1`` rounds, and the episode's
    total simulated time, as lower bounds (in place); differences against them are
    conservative."""
    last_wall: dict[tuple[str, int], float] = {}
    for r in rows:
        last_wall[(r.agent, r.seed)] = r.wall_time_s
    for agent, metrics in per_seed.items():
        for seed, value in metrics.get("rounds_to_target", {}).items():
            if math.isnan(value):
                metrics["rounds_to_target"][seed] = float(rounds + 1)
                if "time_to_target_s" in metrics:
                    metrics["time_to_target_s"][seed] = last_wall.get((agent, seed), math.nan)


# ---------------------------------------------------------------------- report
def _cell(d: PairedDifference) -> str:
    if not math.isfinite(d.mean_diff):
        return "n/a"
    if d.n_seeds < 2:
        return f"{d.mean_diff:+.3g}"
    mark = "**" if d.significant else ""
    return f"{mark}{d.mean_diff:+.3g}{mark} [{d.ci_low:+.3g}, {d.ci_high:+.3g}]"


def paired_table(paired: Sequence[PairedDifference], metrics: Sequence[str]) -> str:
    """Markdown: one row per agent, one column per metric, ``mean [low, high]``."""
    agents = list(dict.fromkeys(d.agent for d in paired))
    by = {(d.agent, d.metric): d for d in paired}
    cols = [m for m in metrics if any((a, m) in by for a in agents)]
    head = ["agent"] + [f"{METRICS_BY_KEY[m].label} ({METRICS_BY_KEY[m].unit})" for m in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in agents:
        lines.append(
            "| "
            + " | ".join([a, *[_cell(by[(a, m)]) if (a, m) in by else "" for m in cols]])
            + " |"
        )
    return "\n".join(lines)


def findings_in_words(
    paired: Sequence[PairedDifference], metrics: Sequence[str] = HEADLINE_METRICS
) -> list[str]:
    """Per agent: which headline differences are significant and which are not."""
    out = []
    agents = list(dict.fromkeys(d.agent for d in paired))
    for agent in agents:
        rows = [d for d in paired if d.agent == agent and d.metric in metrics]
        sig = [d for d in rows if d.significant]
        not_sig = [d for d in rows if not d.significant and d.n_seeds >= 2]
        parts = []
        if sig:
            parts.append(
                "significant: "
                + "; ".join(
                    f"{METRICS_BY_KEY[d.metric].label} {d.mean_diff:+.3g} "
                    f"[{d.ci_low:+.3g}, {d.ci_high:+.3g}] ({'better' if d.better else 'worse'})"
                    for d in sig
                )
            )
        if not_sig:
            parts.append(
                "not significant (interval contains 0): "
                + ", ".join(METRICS_BY_KEY[d.metric].label for d in not_sig)
            )
        if parts:
            base = rows[0].baseline if rows else ""
            out.append(f"**{agent}** vs {base}: " + "; ".join(parts) + ".")
    return out


def render_report(
    cfg: CaseStudyConfig,
    models: Sequence[ModelResult],
    out: Path,
    walls: dict[str, float],
    notes: Sequence[str],
    config: dict[str, Any],
    command: str | None,
) -> str:
    """The markdown report of a case-study run."""
    import datetime as _dt

    from training_scripts.train import package_versions

    lines = [
        f"# QFL case study on QFL-v0 (`{cfg.scenario}`)",
        "",
        f"- date: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {cfg.workers} worker(s)",
        f"- command: `{command or 'qfl-gym case-study'}`",
        "- wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items()),
        f"- seeds: {list(cfg.seeds)} (every agent plays every seed: same device drops, "
        "data partition, model initialization and channel draws)",
        f"- baseline of the paired differences: `{cfg.baseline}`",
        "",
        "Each metric is the mean over seeds of the per-seed difference agent - "
        f"{cfg.baseline}, with a 95% Student-t interval; **bold** = the interval excludes "
        "0 (significant). Rounds/time to target: seeds that never reach the target count "
        f"as {cfg.rounds + 1} rounds / the episode's whole simulated time (lower bounds). "
        f"`{PERFECT_UPLINK}`: every update delivered at once (packet errors off, a 1-bit "
        "update), same seeds: the ceiling any allocation can approach.",
        "",
    ]
    for m in models:
        lines += _model_section(cfg, m, out)
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


def _model_section(cfg: CaseStudyConfig, m: ModelResult, out: Path) -> list[str]:
    sc = m.scenario
    up, le = sc["uplink"], sc["learning"]
    participation = sc.get("participation", "deadline")
    timing = (
        f"round = {sc.get('local_compute_s', 0)} s local compute + slowest upload, cap "
        f"max_round_s = {sc.get('max_round_s')} s"
        if participation == "full"
        else f"round period {up['slot_s']} s, upload deadline {sc['deadline_s']} s"
    )
    classes = le["classes"] if le["classes"] is not None else "all"
    lines = [
        f"## {m.participation} participation",
        "",
        f"- scenario: K={up['num_devices']} devices, N={up['num_subchannels']} NOMA "
        f"sub-channels, L={up['num_power_levels']} power levels, SIC residual "
        f"{up['sic_residual']}, {sc['rounds']} rounds; {timing}; optimizers' objective "
        f"`{sc['objective']}` unless named `agent@objective`",
        f"- learning task: {le['dataset']} (classes {classes}), {le['n_qubits']}-qubit "
        f"{le['n_layers']}-layer VQC ({le['readout']} readout), {le['partition']} "
        f"partition (alpha {le['dirichlet_alpha']}), {le['local_epochs']} local epoch(s)",
        f"- target accuracy: {m.target_accuracy}"
        + (
            f" ({TARGET_FRACTION:.0%} of the perfect-uplink mean final accuracy)"
            if cfg.target_accuracy is None
            else ""
        ),
        "- seeds reaching the target: "
        + ", ".join(f"{a} {r}/{n}" for a, (r, n) in m.reached.items()),
        "- pairing check (data split, partition, initial model and first channel gains "
        "hashed per seed): " + ("identical across all agents" if m.paired_ok else "**MISMATCH**"),
        "",
        "### Paired differences against " + f"`{cfg.baseline}`",
        "",
        paired_table(m.paired, [d.key for d in EPISODE_METRICS]),
        "",
        "In words:",
        "",
        *[f"- {s}" for s in findings_in_words(m.paired)],
        "",
        "### Per-agent means (95% CI over seeds)",
        "",
        summary_table(m.summaries, markdown=True),
        "",
    ]
    for key, caption in (
        ("global_accuracy_png", "Test accuracy vs round"),
        ("accuracy_vs_time_png", "Test accuracy vs simulated time"),
        ("global_loss_png", "Test loss vs round"),
        ("paired_png", "Paired differences"),
        ("deliveries_png", "Updates aggregated per round"),
    ):
        if key in m.files:
            lines += [f"![{caption}]({m.files[key].relative_to(out)})", ""]
    return lines


def preset(name: str, **changes: Any) -> CaseStudyConfig:
    """A case-study preset with ``changes`` (None values are ignored)."""
    if name not in CASE_STUDY_PRESETS:
        raise ValueError(
            f"unknown case-study preset {name!r}; valid: {', '.join(CASE_STUDY_PRESETS)}"
        )
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(CASE_STUDY_PRESETS[name], **changes)


def parse_participation(text: str | None) -> tuple[str, ...] | None:
    """``"full,deadline"`` -> ``("full", "deadline")``; ``"scenario"`` -> ``()`` (the
    scenario's own model); None -> None (the preset's)."""
    if text is None:
        return None
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    if items == ("scenario",):
        return ()
    if not items:
        raise ValueError("--participation expects e.g. 'full,deadline' or 'scenario'")
    return items


def command_line() -> str:
    """The command that started this process, for the report."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def fmt_seconds(value: float) -> str:
    """``75.3`` -> ``'1 min 15 s'``."""
    if not math.isfinite(value):
        return "n/a"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
