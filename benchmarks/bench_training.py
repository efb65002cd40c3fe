"""Training throughput: PPO with DevicePolicy on the native vector env vs SB3 PPO on CartPole.

Prints, measured in the same run (one torch thread each):

- the anchor: stable-baselines3 PPO with default settings on CartPole-v1, 8
  ``DummyVecEnv`` envs (env-steps/s over whole rollout + update cycles);
- PPO with :class:`agents.device_policy.DevicePolicy` and the bundled ChannelPower-v0
  hyperparameters (``training_scripts/hyperparams/ppo.yml``) on
  ``make_sb3_vec_env`` (the path ``qfl-gym train`` takes), env-steps/s during
  ``learn`` and where the time goes: env step, policy forward in the rollout, the
  update's forward (``evaluate_actions``) and its backward + optimizer step, the rest
  (SB3 buffers, GAE, logging);
- the ratio of the two.

Usage::

    .venv/bin/python benchmarks/bench_training.py [--scenario default] [--rollouts 8]
        [--mixer grid --head autoregressive --d-model 16 --n-layers 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import contextmanager


class Timers:
    """Accumulated wall time per name (s)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.total[name] += time.perf_counter() - start

    def wrap(self, obj, method: str, name: str) -> None:
        """Time every call of ``obj.method`` under ``name``."""
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            with self(name):
                return inner(*args, **kwargs)

        setattr(obj, method, timed)


def cartpole_anchor(rollouts: int) -> float:
    """Env-steps/s of default SB3 PPO on CartPole-v1 with 8 DummyVecEnv envs."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), seed=0, device="cpu")
    steps = rollouts * model.n_steps * model.n_envs
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def device_policy_training(
    scenario: str, rollouts: int, net: dict | None = None, batch_size: int | None = None
) -> tuple[float, dict[str, float], dict]:
    """Env-steps/s of the bundled fast path and the time per component (s)."""
    import torch
    from stable_baselines3 import PPO

    from agents.device_policy import DevicePolicy, layout_of
    from qfl_gym.vector.sb3 import make_sb3_vec_env
    from training_scripts.zoo_config import default_config_file, load_hyperparams

    hp = load_hyperparams(default_config_file("ppo"), "qfl_gym/ChannelPower-v0")
    venv = make_sb3_vec_env(
        "qfl_gym/ChannelPower-v0", hp.n_envs, seed=0, **{**hp.env_kwargs, "scenario": scenario}
    )
    kwargs = dict(hp.algo_kwargs)
    if batch_size:
        kwargs["batch_size"] = batch_size
    kwargs["policy_kwargs"] = {
        **kwargs.get("policy_kwargs", {}),
        **(net or {}),
        "layout": layout_of(venv).spec,
    }
    model = PPO(DevicePolicy, venv, seed=0, device="cpu", **kwargs)
    per_rollout = model.n_steps * model.n_envs
    model.learn(per_rollout)  # warm-up: allocations, first-call overheads
    timers = Timers()
    timers.wrap(venv, "step_wait", "env step")
    timers.wrap(model.policy, "forward", "rollout policy forward")
    timers.wrap(model.policy, "evaluate_actions", "update forward")
    timers.wrap(model, "train", "update")
    timers.wrap(model, "collect_rollouts", "rollout")
    steps = rollouts * per_rollout
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    total = time.perf_counter() - start
    t = timers.total
    parts = {
        "env step": t["env step"],
        "rollout policy forward": t["rollout policy forward"],
        "update forward": t["update forward"],
        "update backward + optimizer": t["update"] - t["update forward"],
        "other (SB3 buffers, GAE, logging)": total
        - t["rollout"]
        - t["update"]
        + (t["rollout"] - t["env step"] - t["rollout policy forward"]),
    }
    config = {
        "n_envs": model.n_envs,
        "n_steps": model.n_steps,
        "batch_size": model.batch_size,
        "n_epochs": model.n_epochs,
        "policy_kwargs": kwargs["policy_kwargs"],
        "params": sum(p.numel() for p in model.policy.parameters()),
        "torch_threads": torch.get_num_threads(),
    }
    return steps / total, {**parts, "total": total}, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--rollouts", type=int, default=8, help="DevicePolicy rollouts timed")
    parser.add_argument("--anchor-rollouts", type=int, default=2, help="CartPole rollouts")
    parser.add_argument("--d-model", type=int, help="override the YAML's d_model")
    parser.add_argument("--n-layers", type=int, help="override the YAML's n_layers")
    parser.add_argument(
        "--mixer", choices=("deepsets", "attention", "grid"), help="override the mixer"
    )
    parser.add_argument(
        "--head", choices=("independent", "autoregressive"), help="override the action head"
    )
    parser.add_argument("--batch-size", type=int, help="override the YAML's minibatch size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, DevicePolicy run")
    args = parser.parse_args()
    net = {
        k: v
        for k, v in {
            "d_model": args.d_model,
            "n_layers": args.n_layers,
            "mixer": args.mixer,
            "head": args.head,
        }.items()
        if v is not None
    }

    import torch

    torch.set_num_threads(1)
    anchor = cartpole_anchor(args.anchor_rollouts)
    print(f"anchor: SB3 PPO CartPole-v1, 8 DummyVecEnv, defaults: {anchor:,.0f} env-steps/s")
    torch.set_num_threads(args.threads)
    rate, parts, config = device_policy_training(
        args.scenario, args.rollouts, net, batch_size=args.batch_size
    )
    print(
        f"PPO + DevicePolicy, ChannelPower-v0 {args.scenario!r}, native vector env "
        f"({config}): {rate:,.0f} env-steps/s during learn"
    )
    total = parts.pop("total")
    for name, seconds in parts.items():
        print(f"  {name:<36} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
    print(f"ratio: {rate / anchor:.1f}x the CartPole anchor")


if __name__ == "__main__":
    main()
