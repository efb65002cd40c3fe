"""Reference scores per env id and preset, for the README (run on demand).

For each (env id, preset): trains PPO with the bundled hyperparameters (ChannelPower-v0:
the YAML's budget and DevicePolicy; QFL-v0: a fixed budget), then benchmarks random,
greedy, SCA, QAOA, exhaustive (where the search space is at most 2^22 assignments),
the shipped weights (``pretrained``, where some fit) and the PPO policy on the same
seeded episodes, and prints a markdown table (mean ± 95% CI over seeds).

Usage: ``python benchmarks/reference_results.py [--json] [--out results/reference]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import gymnasium as gym

import qfl_gym  # noqa: F401
from agents.pretrained import select_weights
from training_scripts.benchmark import BenchmarkOptions, new_run_dir, run_benchmark
from training_scripts.train import TrainOptions, train

CP = "qfl_gym/ChannelPower-v0"
QFL = "qfl_gym/QFL-v0"
# (env id, preset, PPO budget in env steps (None: the YAML's), steps per evaluation episode)
CASES = (
    (CP, "small", None, 50),
    (CP, "default", None, 50),
    (CP, "imperfect-sic", None, 50),
    (CP, "case-study", None, 20),
    (QFL, "small", 1_200, None),
    (QFL, "case-study", 1_200, None),
)
AGENTS = ("random", "greedy", "sca", "qaoa", "exhaustive", "pretrained")
SEEDS = (100, 101, 102)


def fmt(mean: float, half: float) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.3g} ± {half:.2g}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    base = new_run_dir(args.out, "reference")
    results = {}
    for env_id, preset, budget, max_steps in CASES:
        t0 = time.perf_counter()
        probe = gym.make(env_id, scenario=preset)
        probe.reset(seed=0)
        size = probe.unwrapped.problem.num_assignments
        try:
            select_weights(probe)
            shipped = True
        except ValueError:  # no shipped weights for this N and L
            shipped = False
        probe.close()
        agents = [
            a
            for a in AGENTS
            if (a != "exhaustive" or size <= 2**22) and (a != "pretrained" or shipped)
        ]
        tag = f"{env_id.split('/')[-1]}-{preset}"
        model = train(
            TrainOptions(
                algo="ppo",
                env_id=env_id,
                out=base / f"ppo-{tag}",
                timesteps=budget,
                scenario=preset,
                seed=0,
                eval_freq=10**9,
                checkpoint_freq=10**9,
                progress_bar=False,
            )
        )
        bench = run_benchmark(
            BenchmarkOptions(
                env_id=env_id,
                agents=[*agents, f"sb3:{model.model_path}"],
                seeds=SEEDS,
                scenario=preset,
                max_steps=max_steps,
                out=base / f"bench-{tag}",
                scaling_sizes=(),
            )
        )
        rows = {}
        for s in bench.summaries:
            name = "ppo" if s.agent.startswith("sb3:") else s.agent
            rows[name] = {k: list(v) for k, v in s.metrics.items()}
            rows[name]["median_decision_time_s"] = s.median_decision_time_s
        results[tag] = {
            "env_id": env_id,
            "preset": preset,
            "ppo_timesteps": model.num_timesteps,
            "max_steps": max_steps,
            "agents": rows,
            "wall_s": time.perf_counter() - t0,
        }
        print(f"{tag}: {time.perf_counter() - t0:.0f} s", flush=True)
    (base / "reference.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results))
        return results
    cols = [*AGENTS, "ppo"]
    print("| env | preset | metric | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in results.values():
        metrics = [("sum_rate_mbps", "sum rate (Mbit/s)")]
        if r["env_id"] == QFL:  # reward there is the loss decrease; show what it drives
            metrics += [("deliveries", "deliveries / round"), ("global_accuracy", "final accuracy")]
        for key, label in metrics:
            cells = [
                fmt(*r["agents"][a][key])
                if a in r["agents"]
                else ("no weights" if a == "pretrained" else "infeasible")
                for a in cols
            ]
            print(
                f"| {r['env_id'].split('/')[-1]} | {r['preset']} | {label} | "
                + " | ".join(cells)
                + " |"
            )
    print(f"\nresults in {base}")
    return results


if __name__ == "__main__":
    main()
