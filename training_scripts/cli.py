"""The ``qfl-gym`` command line (typer). Also ``python -m training_scripts``.

Every command turns bad input (unknown names, bad numbers, missing files, unwritable
folders) into one clear message and exit code 2, never a traceback wall.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qfl_gym.config_fields import UnexpectedKeywordError
from training_scripts.case_study import DEFAULT_AGENTS

app = typer.Typer(
    name="qfl-gym",
    help="Quantum federated learning over a 6G uplink: train, benchmark, reproduce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def pin_numerics() -> None:
    # Every command runs torch, OpenMP and BLAS on one thread, in this process and its
    # workers: sums are then split the same way on every machine (docs/reproducibility.md).
    from qfl_gym.reproducibility import pin_threads

    pin_threads(1)


EnvOption = Annotated[
    str, typer.Option("--env", help="Environment id, e.g. qfl_gym/ChannelPower-v0.")
]
ScenarioOption = Annotated[
    str | None, typer.Option("--scenario", help="Preset of the environment (see `qfl-gym envs`).")
]
#: Ends the help of every option that loads a stable-baselines3 model zip.
UNTRUSTED_MODEL = (
    "A model .zip holds pickled Python objects: loading it runs code stored in it, so load "
    "only files you trust (e.g. your own training runs)."
)


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def clean_errors(func):
    """Turn expected user errors into :func:`fail`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (
            ValueError,
            UnexpectedKeywordError,  # an unknown --set name
            FileNotFoundError,
            PermissionError,
            IsADirectoryError,
        ) as exc:
            fail(str(exc))

    return wrapper


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["num_devices=20", "fading=rician"]`` -> typed dict (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects name=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
        except ValueError:
            raise ValueError(
                f"--seeds expects integers like '0,1,2' or '0-4', got {text!r}"
            ) from None
    if not seeds:
        raise ValueError(f"--seeds lists no seed: {text!r}")
    return seeds


@app.command()
@clean_errors
def envs(
    env: Annotated[str | None, typer.Option("--env", help="Only this env id.")] = None,
) -> None:
    """List environment ids and their presets with every parameter."""
    from training_scripts.env_catalog import describe_envs

    typer.echo(describe_envs(env))


def _train_recipe(source: str, out: Path) -> None:
    import time

    from training_scripts.train import load_recipe, train_device_policy

    recipe = load_recipe(source)
    start = time.perf_counter()
    path = train_device_policy(recipe, cache_dir=out, shipped=False)
    typer.echo(
        f"device-policy weights of recipe {recipe.key()} (any K): {path} "
        f"({time.perf_counter() - start:,.0f} s; reused if it was already there)"
    )


@app.command()
@clean_errors
def train(
    algo: Annotated[str, typer.Option(help="ppo, a2c or dqn.")] = "ppo",
    env: EnvOption = "qfl_gym/ChannelPower-v0",
    scenario: ScenarioOption = None,
    timesteps: Annotated[
        int | None, typer.Option(help="Environment steps (default: the YAML's n_timesteps).")
    ] = None,
    seed: int = 0,
    n_envs: Annotated[int | None, typer.Option(help="Parallel envs (default: YAML).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (must not hold a model).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help=f"Checkpoint .zip to continue (keeps the step count). {UNTRUSTED_MODEL}"),
    ] = None,
    conf_file: Annotated[
        Path | None, typer.Option(help="rl-zoo3 hyperparameter YAML (default: bundled).")
    ] = None,
    eval_freq: int = 100_000,
    checkpoint_freq: int = 200_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Scenario override name=value (repeat).")
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="Train a device-policy recipe instead: the key of shipped weights "
            "(agents/pretrained/index.json, e.g. from agents.pretrained.available_weights()) "
            "or a recipe.json; writes OUT/device-policy-<key>/device_policy.pt."
        ),
    ] = None,
) -> None:
    """Train a stable-baselines3 agent (TensorBoard logs, checkpoints, best model)."""
    from training_scripts.benchmark import new_run_dir
    from training_scripts.train import TrainOptions
    from training_scripts.train import train as run_train

    if recipe is not None:
        _train_recipe(recipe, out or Path("runs") / "recipes")
        return
    if out is None:
        out = new_run_dir(Path("runs"), f"{algo}-{env.split('/')[-1]}")
    result = run_train(
        TrainOptions(
            algo=algo,
            env_id=env,
            out=out,
            timesteps=timesteps,
            scenario=scenario,
            seed=seed,
            n_envs=n_envs,
            resume=resume,
            conf_file=conf_file,
            eval_freq=eval_freq,
            checkpoint_freq=checkpoint_freq,
            progress_bar=progress,
            env_overrides=parse_overrides(set_),
        )
    )
    state = "interrupted; saved" if result.interrupted else "done"
    typer.echo(
        f"{state}: {result.model_path} ({result.num_timesteps} steps, "
        f"{result.steps_per_s:,.0f} env-steps/s)"
    )
    if result.weights_path:
        typer.echo(f"device-policy weights (any K): {result.weights_path}")
    if result.best_model_path:
        typer.echo(f"best model: {result.best_model_path}")


@app.command()
@clean_errors
def evaluate(
    agent: Annotated[str, typer.Option(help=f"Agent name, or sb3:<model.zip>. {UNTRUSTED_MODEL}")],
    env: EnvOption = "qfl_gym/ChannelPower-v0",
    scenario: ScenarioOption = None,
    episodes: int = 3,
    seed: int = 0,
    max_steps: Annotated[int | None, typer.Option(help="Cap on steps per episode.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value override.")] = None,
) -> None:
    """Evaluate one agent on seeded episodes and print its summary."""
    from training_scripts.benchmark import agent_factory, make_env_factory
    from training_scripts.results import summarize, summary_table
    from training_scripts.rollout import run_agents

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    make_env = make_env_factory(env, scenario, parse_overrides(set_))
    name, factory = agent_factory(agent)
    factory(make_env())  # clear error on mismatched spaces before any work
    rows = run_agents(make_env, {name: factory}, [seed], episodes, max_steps)
    typer.echo(summary_table(summarize(rows)))


@app.command()
@clean_errors
def benchmark(
    env: EnvOption = "qfl_gym/ChannelPower-v0",
    agents: Annotated[
        str,
        typer.Option(
            help="Comma-separated names; sb3:<model.zip> or device-policy:<weights.pt> for a "
            f"trained policy, pretrained:<method> for shipped weights. {UNTRUSTED_MODEL}"
        ),
    ] = "random,greedy,local-search",
    scenario: ScenarioOption = None,
    episodes: Annotated[int, typer.Option(help="Episodes per seed.")] = 1,
    seeds: Annotated[str, typer.Option(help="e.g. '0,1,2' or '0-9'.")] = "0,1,2",
    max_steps: Annotated[int | None, typer.Option(help="Cap on steps per episode.")] = None,
    out: Annotated[Path | None, typer.Option(help="New or empty output folder.")] = None,
    scaling_sizes: Annotated[
        str, typer.Option(help="K values for the decision-time plot ('' to skip).")
    ] = "4,8,16,32",
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value override.")] = None,
) -> None:
    """Run agents side by side on the same seeded episodes; CSV, table, plots."""
    from training_scripts.benchmark import BenchmarkOptions, run_benchmark
    from training_scripts.progress import rollout_progress
    from training_scripts.results import summary_table

    opts = BenchmarkOptions(
        env_id=env,
        agents=[a.strip() for a in agents.split(",") if a.strip()],
        seeds=parse_seeds(seeds),
        episodes=episodes,
        scenario=scenario,
        max_steps=max_steps,
        out=out,
        scaling_sizes=[int(k) for k in scaling_sizes.split(",") if k.strip()],
        env_overrides=parse_overrides(set_),
    )
    with rollout_progress() as progress:
        result = run_benchmark(opts, progress=progress)
    typer.echo(summary_table(result.summaries))
    typer.echo(f"results: {result.out}")


@app.command()
@clean_errors
def sweep(
    env: EnvOption = "qfl_gym/ChannelPower-v0",
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            help="FIELD=V1,V2,... (repeat); the first varied field is the figures' x axis.",
        ),
    ] = None,
    agents: Annotated[str, typer.Option(help="Comma-separated agent names.")] = "random,greedy",
    seeds: Annotated[str, typer.Option(help="e.g. '0,1,2' or '0-9'.")] = "0-2",
    scenario: ScenarioOption = None,
    episodes: Annotated[int, typer.Option(help="Episodes per task.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Cap on steps per episode.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local worker processes (default: all cores).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Run the tasks on this Ray cluster ('auto', 'ray://host:10001', 'local')."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="New or empty output folder.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Fixed override name=value.")
    ] = None,
) -> None:
    """Every combination of --vary values x agents x seeds, in parallel; CSV and figures."""
    from training_scripts.sweep import SweepOptions, parse_vary, run_sweep

    opts = SweepOptions(
        env_id=env,
        vary=parse_vary(vary),
        agents=[a.strip() for a in agents.split(",") if a.strip()],
        seeds=parse_seeds(seeds),
        out=out,
        scenario=scenario,
        episodes=episodes,
        max_steps=max_steps,
        workers=workers,
        ray_address=ray_address,
        overrides=parse_overrides(set_),
    )

    def progress(done: int, total: int) -> None:
        typer.echo(f"\r{done}/{total} tasks", nl=done == total, err=True)

    result = run_sweep(opts, progress=progress)
    typer.echo(
        f"{len(result.rows)} rows in {result.wall_time_s:.1f} s: {result.files['sweep_csv']}"
    )


@app.command("case-study")
@clean_errors
def case_study(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="The small QFL-v0 preset (8 devices), 5 seeds, < 1 min."),
    ] = False,
    seeds: Annotated[
        str | None, typer.Option(help="e.g. '0,1,2' (default 0..9; --quick 0..4).")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds per episode.")] = None,
    agents: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated; a bare optimizer name maximizes the participation "
            "model's matching objective, name@objective a given one (e.g. qaoa@sum-rate) "
            f"(default {','.join(DEFAULT_AGENTS)})."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Agent every other one is compared with, per seed (default random)."),
    ] = None,
    target_accuracy: Annotated[
        float | None,
        typer.Option(
            help="Target of rounds/time to accuracy (default 90% of the perfect-uplink "
            "run's mean final accuracy)."
        ),
    ] = None,
    participation: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated participation models to run (default full, the reference "
            "study's setting; 'full,deadline' adds the deadline model; 'scenario': the "
            "scenario's own)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes running agents in parallel (default 2).")
    ] = None,
    ppo_timesteps: Annotated[
        int | None, typer.Option(help="PPO training budget in rounds (default 1200).")
    ] = None,
    ppo_model: Annotated[
        Path | None,
        typer.Option(help=f"Use this trained PPO model instead of training. {UNTRUSTED_MODEL}"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="New or empty output folder.")] = None,
    results: Annotated[
        Path,
        typer.Option(
            help="Base folder of results/<timestamp>/ and the PPO cache (a cached model.zip "
            "found there is loaded: keep the folder your own)."
        ),
    ] = Path("results"),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="QFL-v0 override name=value (repeat).")
    ] = None,
) -> None:
    """Reproduce the reference study: QAOA vs SCA vs local search vs greedy vs random vs PPO,
    paired over seeds, under full and deadline participation."""
    from training_scripts.case_study import (
        command_line,
        fmt_seconds,
        parse_participation,
        preset,
        run_case_study,
    )
    from training_scripts.progress import rollout_progress
    from training_scripts.results import summary_table

    cfg = preset(
        "quick" if quick else "full",
        seeds=tuple(parse_seeds(seeds)) if seeds else None,
        rounds=rounds,
        agents=tuple(a.strip() for a in agents.split(",") if a.strip()) if agents else None,
        ppo_timesteps=ppo_timesteps,
        ppo_model=str(ppo_model) if ppo_model else None,
        scenario_overrides=parse_overrides(set_) or None,
        baseline=baseline,
        target_accuracy=target_accuracy,
        participation=parse_participation(participation),
        workers=workers,
    )
    with rollout_progress() as progress:
        result = run_case_study(
            cfg, out=out, results_base=results, progress=progress, command=command_line()
        )
    for model in result.models:
        typer.echo(f"[{model.participation} participation]")
        typer.echo(summary_table(model.summaries))
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"report: {result.files['report_md']}  (wall time "
        f"{fmt_seconds(result.wall_times_s['total'])}, CPU time of all processes "
        f"{fmt_seconds(result.wall_times_s['CPU time, all processes'])})"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qfl-gym`` console script."""
    try:
        rc = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
