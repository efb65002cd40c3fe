"""Env-rounds/s of the native batched QFL-v0 vector env vs gymnasium's SyncVectorEnv.

Measures, in one run, for each ``num_envs`` (default 1, 4, 16; the ``small`` preset:
K=8 devices, 4-qubit 2-layer VQCs, 30 rounds per episode) env-rounds/s (federated
rounds of sub-environments per second) of

- ``gym.make_vec("qfl_gym/QFL-v0", num_envs=n, vectorization_mode="vector_entry_point")``
  (:class:`~qfl_gym.vector.qfl.QFLVectorEnv`: the local training of all ``n x K``
  devices in one batch), and
- ``gym.make_vec(..., vectorization_mode="sync")`` (``SyncVectorEnv`` of ``QFLEnv``),

each timed over whole episodes: a seeded reset, ``rounds`` steps and the ``NEXT_STEP``
autoreset step (so every timing includes one reset of every sub-environment, as
training does), with the same pre-drawn random actions, interleaved repeats (both see
the same machine load) and medians.

Usage: ``python benchmarks/bench_qfl_vector.py [--json] [--repeats 3]
[--num-envs 1 4 16] [--scenario small] [--episodes 1]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import qfl_gym  # noqa: F401
from qfl_gym.envs.qfl_scenario import qfl_scenario

ENV_ID = "qfl_gym/QFL-v0"


def episode_rounds_per_s(
    env: gym.vector.VectorEnv, actions: list[np.ndarray], rounds: int, episodes: int, seed: int
) -> float:
    """Env-rounds/s over ``episodes`` whole episodes of ``rounds`` (resets included)."""
    start = time.perf_counter()
    env.reset(seed=seed)
    for e in range(episodes):
        for t in range(rounds + (1 if e < episodes - 1 else 0)):
            env.step(actions[t % len(actions)])
    elapsed = time.perf_counter() - start
    return env.num_envs * rounds * episodes / elapsed


def measure(num_envs: int, scenario: str, repeats: int, episodes: int) -> dict:
    native = gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", scenario=scenario
    )
    sync = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", scenario=scenario)
    rounds = qfl_scenario(scenario).rounds
    rng = np.random.default_rng(0)
    nvec = native.single_action_space.nvec
    actions = [rng.integers(0, nvec, (num_envs, len(nvec))) for _ in range(16)]
    for env in (native, sync):  # warm-up: datasets parsed, caches filled
        env.reset(seed=0)
        env.step(actions[0])
    ours, theirs = [], []
    for r in range(repeats):
        ours.append(episode_rounds_per_s(native, actions, rounds, episodes, seed=r))
        theirs.append(episode_rounds_per_s(sync, actions, rounds, episodes, seed=r))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    native.close()
    sync.close()
    return {
        "num_envs": num_envs,
        "native_env_rounds_per_s": statistics.median(ours),
        "sync_env_rounds_per_s": statistics.median(theirs),
        "speedup": statistics.median(ratios),
        "native_runs": ours,
        "sync_runs": theirs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--scenario", default="small")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per timing")
    args = parser.parse_args(argv)
    results = [measure(n, args.scenario, args.repeats, args.episodes) for n in args.num_envs]
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        # the learners run torch with the scenario's torch_threads (1 by default)
        "learning_torch_threads": qfl_scenario(args.scenario).learning.torch_threads,
        "scenario": args.scenario,
        "repeats": args.repeats,
        "episodes_per_timing": args.episodes,
        "results": results,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"QFL-v0 {args.scenario!r}: env-rounds/s, whole episodes (resets included)")
        print(f"{'num_envs':>8} {'native':>10} {'sync':>10} {'speed-up':>9}")
        for r in results:
            print(
                f"{r['num_envs']:>8} {r['native_env_rounds_per_s']:>10,.1f} "
                f"{r['sync_env_rounds_per_s']:>10,.1f} {r['speedup']:>8.2f}x"
            )
    return out


if __name__ == "__main__":
    main()
