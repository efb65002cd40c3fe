"""Short demo: classical agents side by side on ChannelPower-v0 (``make demo``).

Runs each agent on the same seeded episodes (identical channel realizations per seed)
and prints mean reward (sum rate, Mbit/s) with a 95% confidence interval over seeds and
the median decision time.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import agents
import qfl_gym  # noqa: F401  (registers the env ids)

DEFAULT_AGENTS = ("random", "strongest", "greedy", "local-search")


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of a normal-approximation 95% confidence interval."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))


def run_episode(env: gym.Env, agent: agents.Agent, seed: int) -> tuple[float, list[float]]:
    """Mean per-step reward of one episode and the agent's decision times (s)."""
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    rewards, times = [], []
    done = False
    while not done:
        action = agent.act(obs, info)
        times.append(agent.last_stats["decision_time_s"])
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return float(np.mean(rewards)), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeded episodes")
    parser.add_argument("--horizon", type=int, default=50, help="steps per episode")
    parser.add_argument("--agents", default=",".join(DEFAULT_AGENTS))
    args = parser.parse_args(argv)

    env = gym.make("qfl_gym/ChannelPower-v0", scenario=args.scenario, horizon=args.horizon)
    cfg = env.unwrapped.config
    print(
        f"ChannelPower-v0, scenario {args.scenario!r}: K={cfg.num_devices} devices, "
        f"N={cfg.num_subchannels} sub-channels, L={cfg.num_power_levels} power levels, "
        f"{args.seeds} seeds x {args.horizon} steps"
    )
    print(f"{'agent':<14} {'reward (Mbit/s)':>22} {'decision time':>15}")
    t0 = time.perf_counter()
    for name in args.agents.split(","):
        agent = agents.make(name, env, seed=0)
        per_seed, times = [], []
        for seed in range(args.seeds):
            mean_reward, t = run_episode(env, agent, seed)
            per_seed.append(mean_reward)
            times.extend(t)
        mean, half = mean_ci95(np.array(per_seed))
        print(f"{name:<14} {mean:>12.2f} +/- {half:<7.2f} {np.median(times) * 1e3:>12.3f} ms")
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
