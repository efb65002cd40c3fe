"""Speed of ChannelPower-v0 and of the batched sum-rate evaluation (run on demand).

Measures, in one run:
- steps/s of ``gym.make("qfl_gym/ChannelPower-v0")`` (default wrappers, K=10, N=4, L=4,
  random actions from ``action_space.sample()``, resets included) and of
  ``gym.make("CartPole-v1")`` the same way, and their ratio;
- batched ``AllocationProblem.sum_rate`` assignment evaluations/s at M=4096 (K=10,
  N=4), with perfect SIC (default) and with imperfect SIC (full SINR path);
- batched ``AllocationProblem.reward`` assignment evaluations/s at M=4096 (K=10, N=4,
  perfect SIC) for every objective of ``qfl_gym.wireless.problem.OBJECTIVES``.

Targets: ChannelPower-v0 >= 0.25x CartPole-v1; >= 2e6 evaluations/s.

Usage: ``python benchmarks/bench_channel_power.py [--json] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import gymnasium as gym
import numpy as np

import qfl_gym  # noqa: F401
from qfl_gym.wireless.config import uplink_config
from qfl_gym.wireless.problem import OBJECTIVES, AllocationProblem


def env_steps_per_s(env_id: str, steps: int, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    return steps / (time.perf_counter() - start)


def sum_rate_evals_per_s(sic_residual: float, batch: int, calls: int) -> float:
    cfg = uplink_config("default", sic_residual=sic_residual)
    rng = np.random.default_rng(0)
    gains = rng.exponential(size=(cfg.num_devices, cfg.num_subchannels)) * 1e-10
    problem = AllocationProblem.from_config(cfg, gains)
    ch = rng.integers(0, cfg.num_subchannels, (batch, cfg.num_devices))
    lv = rng.integers(0, cfg.num_power_levels, (batch, cfg.num_devices))
    problem.sum_rate(ch, lv)  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        problem.sum_rate(ch, lv)
    return batch * calls / (time.perf_counter() - start)


def reward_evals_per_s(objective: str, batch: int, calls: int) -> float:
    """``AllocationProblem.reward`` assignments/s with ``objective`` (K=10, N=4, eps=0)."""
    cfg = uplink_config("default", objective=objective)
    rng = np.random.default_rng(0)
    gains = rng.exponential(size=(cfg.num_devices, cfg.num_subchannels)) * 1e-10
    problem = AllocationProblem.from_config(cfg, gains)
    ch = rng.integers(0, cfg.num_subchannels, (batch, cfg.num_devices))
    lv = rng.integers(0, cfg.num_power_levels, (batch, cfg.num_devices))
    problem.reward(ch, lv)  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        problem.reward(ch, lv)
    return batch * calls / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50_000)
    args = parser.parse_args(argv)

    ours, cartpole = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        ours.append(env_steps_per_s("qfl_gym/ChannelPower-v0", args.steps))
        cartpole.append(env_steps_per_s("CartPole-v1", args.steps))
    ratios = [a / b for a, b in zip(ours, cartpole, strict=True)]
    perfect = [sum_rate_evals_per_s(0.0, 4096, 200) for _ in range(args.repeats)]
    imperfect = [sum_rate_evals_per_s(0.1, 4096, 50) for _ in range(args.repeats)]
    rewards = {
        o: statistics.median(reward_evals_per_s(o, 4096, 50) for _ in range(args.repeats))
        for o in OBJECTIVES
    }
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "repeats": args.repeats,
        "channel_power_steps_per_s": statistics.median(ours),
        "cartpole_steps_per_s": statistics.median(cartpole),
        "ratio_to_cartpole": statistics.median(ratios),
        "ratio_target": 0.25,
        "sum_rate_evals_per_s_perfect_sic_M4096": statistics.median(perfect),
        "sum_rate_evals_per_s_imperfect_sic_M4096": statistics.median(imperfect),
        "sum_rate_target": 2e6,
        "reward_evals_per_s_M4096": rewards,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"ChannelPower-v0   {result['channel_power_steps_per_s']:>12,.0f} steps/s")
        print(f"CartPole-v1       {result['cartpole_steps_per_s']:>12,.0f} steps/s")
        print(f"ratio             {result['ratio_to_cartpole']:>12.3f}   (target >= 0.25)")
        print(
            f"sum_rate, eps=0   {result['sum_rate_evals_per_s_perfect_sic_M4096']:>12,.0f}"
            " assignments/s at M=4096 (target >= 2,000,000)"
        )
        print(
            f"sum_rate, eps=0.1 {result['sum_rate_evals_per_s_imperfect_sic_M4096']:>12,.0f}"
            " assignments/s at M=4096 (full SINR path)"
        )
        for objective, rate in rewards.items():
            print(f"reward {objective:<10} {rate:>12,.0f} assignments/s at M=4096 (eps=0)")
    return result


if __name__ == "__main__":
    main()
