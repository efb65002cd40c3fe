"""Train stable-baselines3 agents on qfl_gym environments (``qfl-gym train``).

Writes into the output folder:

- ``model.zip``: the final model (also written on Ctrl-C, so an interrupted run is usable);
- ``best/best_model.zip``: the best model by the periodic evaluation (EvalCallback);
- ``checkpoints/<algo>_<steps>_steps.zip``: periodic checkpoints;
- ``tb/``: TensorBoard logs; ``monitor/``: per-episode monitor CSVs; ``eval/``: evaluation
  history; ``run.json``: options, hyperparameters, step count, training throughput
  (env-steps/s), package versions and the numeric environment (SIMD levels, threads:
  :func:`qfl_gym.reproducibility.numerics_record`);
- ``device_policy.pt``: the final weights alone when the policy is
  :class:`agents.device_policy.DevicePolicy` (they run at any K).

Fast path: an env id with a native vector env (ChannelPower-v0) and no ``env_wrapper``
trains on it through :func:`qfl_gym.vector.sb3.make_sb3_vec_env` (one batched numpy
env for all ``n_envs``); others use SB3's ``DummyVecEnv``. A ``DevicePolicy`` gets the
env's observation layout (any K and N of the scenario), whatever layout the YAML names.

Nothing existing is overwritten: a folder that already holds a ``model.zip`` is refused.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.pretrained import PRETRAINED_DIR  # shipped weights, named by recipe key
from qfl_gym.reproducibility import numerics_record
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
    eval_freq: int = 100_000
    eval_episodes: int = 5
    checkpoint_freq: int = 200_000
    progress_bar: bool = True
    env_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a run produced."""

    model_path: Path
    best_model_path: Path | None
    num_timesteps: int
    interrupted: bool
    steps_per_s: float = 0.0
    weights_path: Path | None = None


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

    gym.make(opts.env_id, **env_kwargs).close()  # validates scenario/overrides up front
    out = prepare_output_dir(opts.out)
    torch.set_num_threads(1)  # small networks: one thread is fastest and reproducible
    venv, eval_env = make_training_envs(opts, hp, n_envs, env_kwargs, out)
    policy = resolve_policy(hp.policy)
    policy_kwargs = policy_kwargs_for(policy, hp.algo_kwargs.get("policy_kwargs"), venv)
    algo_kwargs = {**hp.algo_kwargs, "policy_kwargs": policy_kwargs}
    if policy_kwargs is None:
        algo_kwargs.pop("policy_kwargs")
    if opts.resume is not None:
        model = load_model(algo_cls, opts.resume, venv)
        model.tensorboard_log = str(out / "tb")
    else:
        model = algo_cls(
            policy,
            venv,
            seed=opts.seed,
            tensorboard_log=str(out / "tb"),
            device="cpu",
            verbose=0,
            **algo_kwargs,
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
    start_steps, start = model.num_timesteps, time.perf_counter()
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
    elapsed = time.perf_counter() - start
    steps_per_s = (model.num_timesteps - start_steps) / max(elapsed, 1e-9)
    model_path = out / "model.zip"
    model.save(model_path)
    weights = None
    if is_device_policy(type(model.policy)):
        from agents.device_policy import save_weights

        weights = save_weights(model.policy, out / "device_policy.pt")
    best = out / "best" / "best_model.zip"
    record = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "hyperparams": {
            "n_envs": n_envs,
            "policy": hp.policy,
            "policy_kwargs": policy_kwargs,
            "vec_env": type(getattr(venv, "venv", venv)).__name__,
            "env_kwargs": env_kwargs,
            "env_wrappers": hp.env_wrappers,
            **hp.algo_kwargs,
        },
        "num_timesteps": int(model.num_timesteps),
        "interrupted": interrupted,
        "env_steps_per_s": round(steps_per_s, 1),
        "train_seconds": round(elapsed, 2),
        "versions": package_versions(),
        # SIMD levels and threads: what the last float bits depend on across machines
        "numerics": numerics_record(),
    }
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
    venv.close()
    eval_env.close()
    return TrainResult(
        model_path,
        best if best.exists() else None,
        int(model.num_timesteps),
        interrupted,
        steps_per_s,
        weights,
    )


def has_native_vector_env(env_id: str) -> bool:
    """True when ``env_id`` registers a batched vector entry point (the fast path)."""
    import gymnasium as gym

    return gym.spec(env_id).vector_entry_point is not None


def make_training_envs(opts: TrainOptions, hp, n_envs: int, env_kwargs: dict[str, Any], out):
    """The training and evaluation ``VecEnv`` s (native batched env when possible)."""
    if not hp.env_wrappers and has_native_vector_env(opts.env_id):
        from stable_baselines3.common.vec_env import VecMonitor

        from qfl_gym.vector.sb3 import make_sb3_vec_env

        (out / "monitor").mkdir(exist_ok=True)
        venv = make_sb3_vec_env(opts.env_id, n_envs, seed=opts.seed, monitor=False, **env_kwargs)
        venv = VecMonitor(venv, filename=str(out / "monitor" / "train"))
        eval_env = make_sb3_vec_env(
            opts.env_id, opts.eval_episodes, seed=opts.seed + 1_000_003, **env_kwargs
        )
        return venv, eval_env
    from stable_baselines3.common.env_util import make_vec_env

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
    return venv, eval_env


def resolve_policy(name: str):
    """An SB3 alias (``"MlpPolicy"``) as is, a dotted class name as the class."""
    if "." not in name:
        return name
    from training_scripts.zoo_config import import_dotted

    return import_dotted(name)


def is_device_policy(policy: Any) -> bool:
    """True for :class:`agents.device_policy.DevicePolicy` (or a subclass)."""
    if isinstance(policy, str):
        return False
    from agents.device_policy import DevicePolicy

    return isinstance(policy, type) and issubclass(policy, DevicePolicy)


def policy_kwargs_for(policy: Any, policy_kwargs: dict[str, Any] | None, venv) -> dict | None:
    """``policy_kwargs`` with a ``DevicePolicy`` 's layout taken from the training env."""
    if not is_device_policy(policy):
        return policy_kwargs
    from agents.device_policy import layout_of

    return {**(policy_kwargs or {}), "layout": layout_of(venv).spec}


def load_model(algo_cls, path: Path, env=None):
    """Load an SB3 model, turning library errors into one clear ``ValueError``.

    The zip is unpickled (stable-baselines3's ``load``): it runs code stored in the file,
    so only trusted files belong here (``qfl-gym train --resume`` says so in its help).
    """
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


# ----------------------------------------------------------------- DevicePolicy recipes
#: Devices of the training scenarios of :func:`train_device_policy` (weights run at any K).
TRAIN_DEVICES = 10
#: PPO env steps at the env's own K when it has more than TRAIN_DEVICES devices.
FINETUNE_STEPS = 655_360
#: Defaults of the fast path (the bundled ppo.yml's ChannelPower-v0 entry).
PPO_FAST = {
    "n_envs": 256,
    "n_steps": 32,
    "batch_size": 1024,
    "n_epochs": 1,
    "learning_rate": 1e-3,
    "gamma": 0.0,
    "gae_lambda": 0.0,
    "ent_coef": 0.0,
}
DEVICE_METHODS = ("ppo", "imitation", "imitation+ppo")
#: The network of :func:`recipe_for_env`'s recipes: (device, sub-channel) tokens, devices
#: deciding in turn (coordinated choices, any K without fine-tuning).
RECIPE_NETWORK = {"mixer": "grid", "head": "autoregressive", "d_model": 32, "n_layers": 2}
#: Round-time recipes imitate SCA: local search is a weak teacher of the max-min rate
#: (in the case study it hears 15 of 50 updates per round, SCA 48.7); cloned from local
#: search, the autoregressive policy heard 6.7 (random 18.2).
ROUND_TIME_TEACHER = {"teacher": "sca", "imitation_samples": 4_000}
#: PPO env steps at the env's K for the autoregressive head (objectives other than sum rate).
FINETUNE_STEPS_AUTOREGRESSIVE = 327_680
#: PPO env steps of :func:`recipe_for_env`'s PPO recipes.
RECIPE_PPO_STEPS = 524_288


@dataclass(frozen=True)
class DevicePolicyRecipe:
    """How :func:`train_device_policy` trains a DevicePolicy (all of it is the cache key).

    Attributes
    ----------
    uplink : dict
        ``UplinkConfig`` fields of the training scenario (ChannelPower-v0), e.g.
        ``{"num_devices": 10, "objective": "deliveries"}``; unspecified fields keep the
        ``default`` preset's values.
    method : {"ppo", "imitation", "imitation+ppo"}
        PPO from scratch; behaviour cloning of ``teacher``; cloning then PPO.
    ppo_steps : int
        PPO env steps (methods with ppo).
    teacher : str
        Agent imitated (registry name), e.g. ``"local-search"``.
    imitation_samples : int
        Teacher decisions recorded (episodes of ``imitation_horizon`` steps).
    imitation_epochs : int
        Passes over them.
    d_model, n_layers, mixer, head
        Network (``DevicePolicy`` options).
    finetune_devices, finetune_steps, finetune_envs
        Then PPO for ``finetune_steps`` env steps at ``finetune_devices`` devices (the
        same weights; 0: none) on ``finetune_envs`` envs.
    seed : int
    """

    uplink: tuple[tuple[str, Any], ...] = ()
    method: str = "ppo"
    ppo_steps: int = 1_000_000
    teacher: str = "local-search"
    imitation_samples: int = 10_000
    imitation_epochs: int = 25
    imitation_horizon: int = 50
    d_model: int = 64
    n_layers: int = 2
    mixer: str = "deepsets"
    head: str = "independent"
    finetune_devices: int = 0
    finetune_steps: int = 0
    finetune_envs: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in DEVICE_METHODS:
            raise ValueError(f"method must be one of {DEVICE_METHODS}, got {self.method!r}")
        if isinstance(self.uplink, dict):
            object.__setattr__(self, "uplink", tuple(sorted(self.uplink.items())))

    def key(self) -> str:
        """A short hash of the recipe (cache folder name)."""
        import hashlib

        fields = asdict(self)
        if not self.finetune_steps:  # keys of recipes without fine-tuning stay as they were
            for name in ("finetune_devices", "finetune_steps", "finetune_envs"):
                fields.pop(name)
        if self.head == "independent":  # so do keys of recipes with the first head
            fields.pop("head")
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def imitation_data(recipe: DevicePolicyRecipe):
    """``(observations (S, D) float32, teacher actions (S, 2K) int64)`` on ChannelPower-v0."""
    import gymnasium as gym
    import numpy as np

    import agents

    env = gym.make(
        "qfl_gym/ChannelPower-v0", **dict(recipe.uplink), horizon=recipe.imitation_horizon
    )
    teacher = agents.make(recipe.teacher, env, seed=recipe.seed)
    obs_list, act_list = [], []
    episode = 0
    while len(obs_list) < recipe.imitation_samples:
        obs, info = env.reset(seed=recipe.seed * 1_000_003 + 7_919 * episode)
        episode += 1
        done = False
        while not done and len(obs_list) < recipe.imitation_samples:
            action = teacher.act(obs, info)
            obs_list.append(obs)
            act_list.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    env.close()
    return np.stack(obs_list).astype(np.float32), np.stack(act_list).astype(np.int64)


def imitate(
    policy,
    observations,
    actions,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Behaviour cloning: maximize the log-probability of ``actions``; mean loss per epoch."""
    import torch

    obs = torch.as_tensor(observations)
    act = torch.as_tensor(actions)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    policy.set_training_mode(True)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=gen)
        total = 0.0
        for start in range(0, len(obs), batch_size):
            idx = order[start : start + batch_size]
            logits = policy.mlp_extractor.forward_actor(obs[idx])
            loss = -policy.action_dist.proba_distribution(logits).log_prob(act[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(obs))
    policy.set_training_mode(False)
    return losses


def train_device_policy(
    recipe: DevicePolicyRecipe,
    cache_dir: str | Path = Path("runs") / ".device-policy-cache",
    shipped: bool = True,
) -> Path:
    """Weights of a DevicePolicy trained by ``recipe``; shipped or cached ones if there.

    Looks in :data:`PRETRAINED_DIR` (``device-policy-<key>.pt``, unless ``shipped`` is
    False: reproduce shipped weights), then ``cache_dir``; trains otherwise.

    Returns the ``.pt`` file (:func:`agents.device_policy.load_weights`); beside it
    ``recipe.json`` (the recipe, time taken, throughput).
    """
    packaged = PRETRAINED_DIR / f"device-policy-{recipe.key()}.pt"
    if shipped and packaged.is_file():
        return packaged
    folder = Path(cache_dir) / f"device-policy-{recipe.key()}"
    weights = folder / "device_policy.pt"
    if weights.is_file():
        return weights
    if recipe.finetune_steps:
        return _finetune(recipe, cache_dir, weights)
    start = time.perf_counter()
    net = {k: getattr(recipe, k) for k in ("d_model", "n_layers", "mixer", "head")}
    model, venv = _device_ppo(recipe, PPO_FAST["n_envs"], recipe.seed, dict(recipe.uplink), net)
    record: dict[str, Any] = {"recipe": asdict(recipe)}
    if recipe.method.startswith("imitation"):
        obs, actions = imitation_data(recipe)
        record["imitation_data_s"] = round(time.perf_counter() - start, 1)
        losses = imitate(model.policy, obs, actions, recipe.imitation_epochs, seed=recipe.seed)
        record["imitation_losses"] = [round(v, 4) for v in losses]
        record["imitation_s"] = round(time.perf_counter() - start, 1)
    if recipe.method in ("ppo", "imitation+ppo"):
        ppo_start = time.perf_counter()
        model.learn(recipe.ppo_steps)
        record["ppo_env_steps_per_s"] = round(
            recipe.ppo_steps / (time.perf_counter() - ppo_start), 1
        )
    venv.close()
    record["seconds"] = round(time.perf_counter() - start, 1)
    return _save_trained(model.policy, weights, record)


def _finetune(recipe: DevicePolicyRecipe, cache_dir: str | Path, weights: Path) -> Path:
    """PPO at ``recipe.finetune_devices`` from the (cached) weights of the recipe without it."""
    from agents.device_policy import load_weights

    base_recipe = dataclasses.replace(recipe, finetune_devices=0, finetune_steps=0)
    base = train_device_policy(base_recipe, cache_dir, shipped=False)
    start = time.perf_counter()
    trained = load_weights(base)  # the weights do not depend on K
    config = trained.config()
    net = {k: config[k] for k in ("d_model", "n_layers", "mixer", "relative", "head")}
    uplink = {**dict(recipe.uplink), "num_devices": recipe.finetune_devices}
    model, venv = _device_ppo(recipe, recipe.finetune_envs, recipe.seed + 1, uplink, net)
    model.policy.load_state_dict(trained.state_dict())
    model.learn(recipe.finetune_steps)
    venv.close()
    seconds = time.perf_counter() - start
    record = {
        "recipe": asdict(recipe),
        "base_weights": str(base),
        "finetune_env_steps_per_s": round(recipe.finetune_steps / seconds, 1),
        "seconds": round(seconds, 1),
    }
    return _save_trained(model.policy, weights, record)


def _device_ppo(
    recipe: DevicePolicyRecipe, n_envs: int, env_seed: int, uplink: dict, net: dict
) -> tuple[Any, Any]:
    """SB3 PPO with ``DevicePolicy(**net)`` and the fast path's settings on ``n_envs``
    ChannelPower-v0 envs of ``uplink`` (native vector env), and that env."""
    import torch
    from stable_baselines3 import PPO

    from agents.device_policy import DevicePolicy, layout_of
    from qfl_gym.vector.sb3 import make_sb3_vec_env

    torch.set_num_threads(1)
    torch.manual_seed(recipe.seed)
    venv = make_sb3_vec_env("qfl_gym/ChannelPower-v0", n_envs, seed=env_seed, **uplink)
    ppo_kwargs = {k: v for k, v in PPO_FAST.items() if k != "n_envs"}
    model = PPO(
        DevicePolicy,
        venv,
        seed=recipe.seed,
        device="cpu",
        policy_kwargs={"layout": layout_of(venv).spec, **net},
        **ppo_kwargs,
    )
    return model, venv


def _save_trained(policy: Any, weights: Path, record: dict[str, Any]) -> Path:
    """Write ``weights`` (through a temporary file) and ``recipe.json`` beside them."""
    from agents.device_policy import save_weights

    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".pt.tmp")
    save_weights(policy, tmp)
    (weights.parent / "recipe.json").write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(weights)
    return weights


def load_recipe(source: str | Path) -> DevicePolicyRecipe:
    """The recipe of shipped weights (``"f2df7ad704c4"``, their file name) or a recipe.json.

    ``qfl-gym train --recipe SOURCE`` trains it again (:func:`train_device_policy` with
    ``shipped=False``).
    """
    path = Path(source)
    if not path.exists() and path.parent == Path("."):  # a key or a shipped file's name
        key = path.name.removesuffix(path.suffix if path.suffix in (".pt", ".json") else "")
        path = PRETRAINED_DIR / f"device-policy-{key.removeprefix('device-policy-')}.json"
    elif path.suffix == ".pt":
        path = path.with_suffix(".json")
    if not path.is_file():
        known = sorted(p.stem.removeprefix("device-policy-") for p in PRETRAINED_DIR.glob("*.json"))
        known = [k for k in known if k != "index"]
        raise ValueError(
            f"--recipe {str(source)!r}: no recipe file {str(path)!r}; shipped recipes: "
            f"{', '.join(known)} (or give a recipe.json path)"
        )
    record = json.loads(path.read_text())
    fields = dict(record.get("recipe", record))
    fields["uplink"] = tuple((k, _tuple(v)) for k, v in fields.get("uplink", ()))
    known_fields = {f.name for f in dataclasses.fields(DevicePolicyRecipe)}
    unknown = sorted(set(fields) - known_fields)
    if unknown:
        raise ValueError(f"{path}: unknown recipe fields {unknown}")
    return DevicePolicyRecipe(**fields)


def _tuple(value: Any) -> Any:
    """JSON lists back to the tuples the recipe held (positions, pairs)."""
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value


def recipe_for_env(env: Any, method: str = "imitation", **changes: Any) -> DevicePolicyRecipe:
    """The recipe of a DevicePolicy for ``env`` (ChannelPower-v0 or QFL-v0, any K).

    Trains :data:`RECIPE_NETWORK` (the autoregressive head, which runs at any K
    without fine-tuning; on the round-time objective by imitating SCA,
    :data:`ROUND_TIME_TEACHER`) on ChannelPower-v0 with ``env``'s uplink configuration (its
    objective, SIC residual, slot, N, L, ...) and ``min(K, TRAIN_DEVICES)`` devices; PPO
    methods for :data:`RECIPE_PPO_STEPS` steps. On QFL-v0 with the default ``sum-rate``
    uplink objective, the objective is what a round counts
    (:func:`agents.pretrained.env_requirements`: ``deliveries``, or ``round-time`` with
    full participation). When K > 10 and the objective is not the sum rate (or the
    ``head`` is independent), PPO continues at the env's K (``FINETUNE_STEPS_AUTOREGRESSIVE``
    or ``FINETUNE_STEPS`` steps). ``changes`` replace recipe fields.
    """
    from agents.pretrained import env_requirements

    config = getattr(getattr(env, "unwrapped", env), "config", None)
    if config is None or not hasattr(config, "num_devices"):
        raise ValueError(
            f"recipe_for_env needs a qfl_gym env with an uplink config; got {type(env).__name__}"
        )
    fields = {k: v for k, v in asdict(config).items() if v is not None}
    fields["num_devices"] = min(int(config.num_devices), TRAIN_DEVICES)
    layout = getattr(getattr(env, "unwrapped", env), "observation_layout", None)
    if getattr(layout, "kind", None) == "qfl":
        fields["objective"] = env_requirements(env)["objective"]
    fields.pop("horizon", None)
    if isinstance(fields.get("eavesdropper_positions_m"), list):
        fields["eavesdropper_positions_m"] = tuple(map(tuple, fields["eavesdropper_positions_m"]))
    steps = {"ppo_steps": RECIPE_PPO_STEPS} if "ppo" in method else {}
    teacher = ROUND_TIME_TEACHER if fields.get("objective") == "round-time" else {}
    changes = {**RECIPE_NETWORK, **teacher, **steps, **changes}
    independent = changes["head"] == "independent"
    if int(config.num_devices) > TRAIN_DEVICES and (
        independent or fields.get("objective") != "sum-rate"
    ):
        # a brief PPO at the env's K: independent heads need it everywhere; the
        # autoregressive head runs zero-shot on the sum rate but not on deliveries or
        # round time (how many devices can share a sub-channel changes with K)
        changes = {
            "finetune_devices": int(config.num_devices),
            "finetune_steps": FINETUNE_STEPS if independent else FINETUNE_STEPS_AUTOREGRESSIVE,
            **changes,
        }
    return DevicePolicyRecipe(uplink=tuple(sorted(fields.items())), method=method, **changes)
