"""Train stable-baselines3 agents on qfl_gym environments (``qfl-gym train``).

Writes into the output folder:

- ``model.zip``: the final model (also written on Ctrl-C, so an interrupted run is usable);
- ``best/best_model.zip``: the best model by the periodic evaluation (EvalCallback);
- ``checkpoints/<algo>_<steps>_steps.zip``: periodic checkpoints;
- ``tb/``: TensorBoard logs; ``monitor/``: per-episode monitor CSVs; ``eval/``: evaluation
  history; ``run.json``: options, hyperparameters, step count and package versions.

Nothing existing is overwritten: a folder that already holds a ``model.zip`` is refused.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training_scripts.zoo_config import ALGOS, default_config_file, load_hyperparams


@dataclass
class TrainOptions:
    """Options of one training run (``qfl-gym train``)."""

    algo: str
    env_id: str
    out: Path
    timesteps: int | None = None
    scenario: str | None = None
    seed: int = 0
    n_envs: int | None = None
    resume: Path | None = None
    conf_file: Path | None = None
    eval_freq: int = 10_000
    eval_episodes: int = 5
    checkpoint_freq: int = 50_000
    progress_bar: bool = True
    env_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a run produced."""

    model_path: Path
    best_model_path: Path | None
    num_timesteps: int
    interrupted: bool


def algorithm_class(algo: str):
    """The stable-baselines3 class of ``algo`` (ppo, a2c, dqn)."""
    import stable_baselines3 as sb3

    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[algo]


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` listing the qfl_gym ids if ``env_id`` is not registered."""
    import gymnasium as gym

    import qfl_gym

    if env_id not in gym.envs.registration.registry:
        raise ValueError(f"unknown env {env_id!r}; valid: {', '.join(qfl_gym.ENV_IDS)}")


def prepare_output_dir(out: Path) -> Path:
    """Create ``out``; refuse a folder that already holds a trained model."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    if (out / "model.zip").exists():
        raise ValueError(
            f"--out {str(out)!r} already holds a trained model.zip; choose a new folder "
            "(nothing is overwritten)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from exc
    return out


def train(opts: TrainOptions) -> TrainResult:
    """Run one training job; see the module docstring for what it writes."""
    if opts.timesteps is not None and opts.timesteps <= 0:
        raise ValueError(f"--timesteps must be > 0, got {opts.timesteps}")
    if opts.n_envs is not None and opts.n_envs < 1:
        raise ValueError(f"--n-envs must be >= 1, got {opts.n_envs}")
    algo_cls = algorithm_class(opts.algo)
    check_env_id(opts.env_id)
    if opts.resume is not None and not Path(opts.resume).is_file():
        raise ValueError(f"--resume checkpoint {str(opts.resume)!r} does not exist")
    hp = load_hyperparams(opts.conf_file or default_config_file(opts.algo), opts.env_id)
    timesteps = opts.timesteps or hp.n_timesteps
    if not timesteps:
        raise ValueError("--timesteps not given and the hyperparameter file has no n_timesteps")
    n_envs = opts.n_envs or hp.n_envs
    env_kwargs = dict(hp.env_kwargs)
    if opts.scenario is not None:
        env_kwargs["scenario"] = opts.scenario
    env_kwargs.update(opts.env_overrides)

    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    gym.make(opts.env_id, **env_kwargs).close()  # validates scenario/overrides up front
    out = prepare_output_dir(opts.out)
    torch.set_num_threads(1)  # small MLPs: one thread is fastest and reproducible
    wrapper = hp.wrapper()
    venv = make_vec_env(
        opts.env_id,
        n_envs=n_envs,
        seed=opts.seed,
        env_kwargs=env_kwargs,
        wrapper_class=wrapper,
        monitor_dir=str(out / "monitor"),
    )
    eval_env = make_vec_env(
        opts.env_id,
        n_envs=1,
        seed=opts.seed + 1_000_003,
        env_kwargs=env_kwargs,
        wrapper_class=wrapper,
    )
    if opts.resume is not None:
        model = load_model(algo_cls, opts.resume, venv)
        model.tensorboard_log = str(out / "tb")
    else:
        model = algo_cls(
            hp.policy,
            venv,
            seed=opts.seed,
            tensorboard_log=str(out / "tb"),
            device="cpu",
            verbose=0,
            **hp.algo_kwargs,
        )
    callbacks = CallbackList(
        [
            CheckpointCallback(
                save_freq=max(opts.checkpoint_freq // n_envs, 1),
                save_path=str(out / "checkpoints"),
                name_prefix=opts.algo,
            ),
            EvalCallback(
                eval_env,
                n_eval_episodes=opts.eval_episodes,
                eval_freq=max(opts.eval_freq // n_envs, 1),
                best_model_save_path=str(out / "best"),
                log_path=str(out / "eval"),
                deterministic=True,
                verbose=0,
            ),
        ]
    )
    interrupted = False
    try:
        model.learn(
            total_timesteps=timesteps,
            callback=callbacks,
            progress_bar=opts.progress_bar,
            reset_num_timesteps=opts.resume is None,
            tb_log_name=opts.algo,
        )
    except KeyboardInterrupt:
        interrupted = True
    model_path = out / "model.zip"
    model.save(model_path)
    best = out / "best" / "best_model.zip"
    record = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "hyperparams": {
            "n_envs": n_envs,
            "policy": hp.policy,
            "env_kwargs": env_kwargs,
            "env_wrappers": hp.env_wrappers,
            **hp.algo_kwargs,
        },
        "num_timesteps": int(model.num_timesteps),
        "interrupted": interrupted,
        "versions": package_versions(),
    }
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
    venv.close()
    eval_env.close()
    return TrainResult(
        model_path, best if best.exists() else None, int(model.num_timesteps), interrupted
    )


def load_model(algo_cls, path: Path, env=None):
    """Load an SB3 model, turning library errors into one clear ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    try:
        return algo_cls.load(str(path), env=env, device="cpu")
    except ValueError as exc:  # SB3: observation/action space mismatch
        raise ValueError(f"{path}: {exc}") from exc
    except Exception as exc:  # zip/pickle errors of a corrupt file
        raise ValueError(
            f"{path} is not a readable {algo_cls.__name__} model ({type(exc).__name__}: {exc})"
        ) from exc


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in (
        "qfl-gym",
        "numpy",
        "torch",
        "gymnasium",
        "stable-baselines3",
        "pennylane",
        "pennylane-lightning",
        "scikit-learn",
        "dimod",
        "dwave-samplers",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
