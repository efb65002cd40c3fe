"""Decision time of the shipped learned policies (``agents.make("pretrained", env)``).

Prints, per env and K, the median and 90th percentile of one ``agent.act`` call (one
observation, deterministic), the shipped weights picked, and SCA's median decision on
the same observation for scale; the CartPole-v1 random-policy steps/s measured in the
same run anchors the host's speed.

Usage::

    .venv/bin/python benchmarks/bench_policy_decision.py [--calls 300] [--no-sca]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
from bench_channel_power import env_steps_per_s  # a sibling script (benchmarks/ on the path)

import agents
import qfl_gym  # noqa: F401

CASES = (
    ("qfl_gym/ChannelPower-v0", "default", 10),
    ("qfl_gym/ChannelPower-v0", "case-study", 50),
    ("qfl_gym/QFL-v0", "case-study", 50),
)


def decision_times(agent, obs, info, calls: int) -> np.ndarray:
    """Seconds per ``agent.act`` call on one observation (after 5 warm-up calls)."""
    for _ in range(5):
        agent.act(obs, info)
    out = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        agent.act(obs, info)
        out[i] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--no-sca", action="store_true", help="skip SCA's decision time")
    args = parser.parse_args()
    anchor = env_steps_per_s("CartPole-v1", 20_000)
    print(f"anchor: CartPole-v1 random policy {anchor:,.0f} steps/s")
    for env_id, scenario, K in CASES:
        env = gym.make(env_id, scenario=scenario, num_devices=K)
        obs, info = env.reset(seed=1)
        agent = agents.make("pretrained", env, seed=0)
        t = decision_times(agent, obs, info, args.calls)
        line = (
            f"{env_id} {scenario} K={K} ({agent.weights.file}): median "
            f"{1e3 * np.median(t):.2f} ms, p90 {1e3 * np.percentile(t, 90):.2f} ms"
        )
        if not args.no_sca:
            sca = decision_times(agents.make("sca", env, seed=0), obs, info, 5)
            line += f"; SCA median {1e3 * np.median(sca):.1f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
