"""Env-steps/s of the native batched ChannelPower-v0 vs gymnasium's SyncVectorEnv.

Measures, in one run, for each ``num_envs`` (default 16, 256, 1024; K=10, N=4, L=4,
the ``default`` scenario): env-steps/s (sub-environment steps per second, automatic
resets included) of

- ``gym.make_vec("qfl_gym/ChannelPower-v0", num_envs=n, vectorization_mode="vector_entry_point")``
  (the native batched env), and
- ``gym.make_vec(..., vectorization_mode="sync")`` (``SyncVectorEnv`` of single envs),

with the same pre-drawn random actions, interleaved repeats (both see the same
machine load) and medians. Targets: >= 1,000,000 env-steps/s at 1024 envs;
native >= 10x SyncVectorEnv at the same ``num_envs``.

Usage: ``python benchmarks/bench_vector.py [--json] [--repeats 5] [--num-envs 16 256 1024]
[--num-threads 1]`` (``--num-threads 2``: the native env draws its fading innovations on
two threads).
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

ENV_ID = "qfl_gym/ChannelPower-v0"
TARGET_STEPS_PER_S = 1_000_000
TARGET_RATIO = 10.0


def steps_per_s(env: gym.vector.VectorEnv, actions: list[np.ndarray], steps: int) -> float:
    """Env-steps/s of ``steps`` vector steps (after one warm-up episode)."""
    env.reset(seed=0)
    for i in range(100):  # one episode: blocks drawn, caches warm
        env.step(actions[i % len(actions)])
    start = time.perf_counter()
    for i in range(steps):
        env.step(actions[i % len(actions)])
    return env.num_envs * steps / (time.perf_counter() - start)


def measure(num_envs: int, repeats: int, budget_s: float, num_threads: int = 1) -> dict:
    native = gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", num_threads=num_threads
    )
    sync = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync")
    rng = np.random.default_rng(0)
    nvec = native.single_action_space.nvec
    actions = [rng.integers(0, nvec, (num_envs, len(nvec))) for _ in range(8)]
    # step counts sized from a quick probe so each timing takes about budget_s
    probe_native = steps_per_s(native, actions, 20)
    probe_sync = steps_per_s(sync, actions, 2)
    n_native = max(50, int(budget_s * probe_native / num_envs))
    n_sync = max(5, int(budget_s * probe_sync / num_envs))
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(steps_per_s(native, actions, n_native))
        theirs.append(steps_per_s(sync, actions, n_sync))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {
        "num_envs": num_envs,
        "native_env_steps_per_s": statistics.median(ours),
        "sync_env_steps_per_s": statistics.median(theirs),
        "ratio": statistics.median(ratios),
        "native_runs": ours,
        "sync_runs": theirs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 256, 1024])
    parser.add_argument("--budget-s", type=float, default=1.0, help="seconds per timing")
    parser.add_argument(
        "--num-threads", type=int, default=1, help="the native env's num_threads (default 1)"
    )
    args = parser.parse_args(argv)
    results = [measure(n, args.repeats, args.budget_s, args.num_threads) for n in args.num_envs]
    by_n = {r["num_envs"]: r for r in results}
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "repeats": args.repeats,
        "num_threads": args.num_threads,
        "results": results,
        "target_env_steps_per_s_at_1024": TARGET_STEPS_PER_S,
        "target_ratio": TARGET_RATIO,
        "ratio_target_met": all(r["ratio"] >= TARGET_RATIO for r in results),
    }
    if 1024 in by_n:
        out["throughput_target_met"] = by_n[1024]["native_env_steps_per_s"] >= TARGET_STEPS_PER_S
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'num_envs':>8} {'native/s':>12} {'sync/s':>10} {'ratio':>7}")
        for r in results:
            print(
                f"{r['num_envs']:>8} {r['native_env_steps_per_s']:>12,.0f} "
                f"{r['sync_env_steps_per_s']:>10,.0f} {r['ratio']:>7.1f}"
            )
        print(
            f"targets: >= {TARGET_STEPS_PER_S:,} env-steps/s at 1024 "
            f"({out.get('throughput_target_met')}); >= {TARGET_RATIO:g}x sync "
            f"({out['ratio_target_met']})"
        )
    return out


if __name__ == "__main__":
    main()
