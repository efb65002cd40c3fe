"""Agents side by side: quality against the exhaustive optimum, decision time, QAOA cost.

Measures, in one run:

- **Small-instance grid** (exhaustive optimum available): for every agent the mean
  ratio of its decision's reward to the optimum, the fraction of optimal decisions and
  the median decision time; QAOA's qubits, depth and shots. Equal budgets:
  ``random-sampling`` draws as many assignments as QAOA takes shots, ``annealing``
  reads as many samples.
- **QAOA 12 qubits, p = 2**: median decision time on the 12-qubit instances of the
  grid (target: <= 2 s).
- **Case study** (``case-study`` preset: K = 50, N = 4, L = 4, eps = 0.05): mean reward
  (sum rate, Mbit/s) per agent over seeded episodes, median decision time; here
  ``random-sampling`` gets QAOA's total shots per decision.
- Whether QAOA beats SCA and equal-budget random sampling, in both settings, reported
  as measured.
- With ``--pennylane``: one 12-qubit ``qaoa-qubo`` decision (K = 3, N = L = 2, one-hot,
  p = 2) on each simulator (numpy, ``lightning.qubit``, ``default.qubit``).

"evaluations" counts assignments whose true reward an agent computed; QAOA's ``exact``
mode counts its whole block table (the classical price of the exact cost diagonal).

Usage: ``python benchmarks/bench_agents.py [--json] [--seeds 5] [--episodes 3 --steps 5]
[--pennylane]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

import agents
import qfl_gym  # noqa: F401

ENV_ID = "qfl_gym/ChannelPower-v0"
GRID: dict[str, dict[str, Any]] = {
    "K3-N4-L4": {"num_devices": 3},
    "K3-N4-L4-eps0.1": {"num_devices": 3, "sic_residual": 0.1},
    "K6-N2-L2": {"num_devices": 6, "num_subchannels": 2, "num_power_levels": 2},
    "K6-N2-L2-eps0.05": {
        "num_devices": 6,
        "num_subchannels": 2,
        "num_power_levels": 2,
        "sic_residual": 0.05,
    },
    "K4-N2-L2-priced": {
        "num_devices": 4,
        "num_subchannels": 2,
        "num_power_levels": 2,
        "sic_residual": 0.1,
        "energy_weight": 300.0,
        "outage_penalty": 0.5,
        "min_rate_bps": 2e6,
    },
}
TWELVE_QUBITS = ("K3-N4-L4", "K3-N4-L4-eps0.1", "K6-N2-L2", "K6-N2-L2-eps0.05")
# QAOA first: random-sampling's budget is QAOA's shots of the same decision
GRID_AGENTS = (
    "qaoa",
    "qaoa-qubo",
    "random",
    "greedy",
    "local-search",
    "sca",
    "random-sampling",
    "annealing",
)
CASE_AGENTS = ("qaoa", "qaoa-qubo", "greedy", "local-search", "sca", "random-sampling", "annealing")


def value_of(env: gym.Env, info: dict, action: Any) -> float:
    return float(info["problem"].reward(*env.unwrapped.decode_action(action)))


def small_grid(seeds: int) -> dict[str, Any]:
    ratios: dict[str, list[float]] = {a: [] for a in GRID_AGENTS}
    optimal: dict[str, list[bool]] = {a: [] for a in GRID_AGENTS}
    times: dict[str, list[float]] = {a: [] for a in GRID_AGENTS}
    evaluations: dict[str, list[int]] = {a: [] for a in GRID_AGENTS}
    qaoa_stats: dict[str, dict] = {}
    twelve_qubit_times: list[float] = []
    for label, overrides in GRID.items():
        env = gym.make(ENV_ID, **overrides)
        for seed in range(seeds):
            obs, info = env.reset(seed=seed)
            best = value_of(env, info, agents.make("exhaustive", env).act(obs, info))
            shots = None
            for name in GRID_AGENTS:
                kwargs: dict[str, Any] = {}
                if name == "random-sampling":
                    kwargs["samples"] = shots
                agent = agents.make(name, env, seed=seed, **kwargs)
                value = value_of(env, info, agent.act(obs, info))
                stats = agent.last_stats
                ratios[name].append(value / best)
                optimal[name].append(value >= best - 1e-9 * abs(best))
                times[name].append(stats["decision_time_s"])
                evaluations[name].append(stats["objective_evaluations"])
                if name == "qaoa":
                    shots = stats["shots"]
                    if label in TWELVE_QUBITS:
                        twelve_qubit_times.append(stats["decision_time_s"])
                if name.startswith("qaoa"):
                    qaoa_stats.setdefault(
                        f"{name} {label}",
                        {k: stats[k] for k in ("qubits", "depth", "shots", "mode")},
                    )
                    qaoa_stats[f"{name} {label}"].setdefault("circuit_executions", [])
                    qaoa_stats[f"{name} {label}"]["circuit_executions"].append(
                        stats["circuit_executions"]
                    )
    for entry in qaoa_stats.values():
        entry["circuit_executions"] = statistics.median(entry["circuit_executions"])
    return {
        "instances": {k: dict(o.items()) for k, o in GRID.items()},
        "seeds": seeds,
        "agents": {
            name: {
                "mean_ratio_to_optimum": float(np.mean(ratios[name])),
                "min_ratio_to_optimum": float(np.min(ratios[name])),
                "fraction_optimal": float(np.mean(optimal[name])),
                "median_decision_time_s": statistics.median(times[name]),
                "median_objective_evaluations": statistics.median(evaluations[name]),
            }
            for name in GRID_AGENTS
        },
        "qaoa": qaoa_stats,
        "qaoa_12_qubits_p2_median_decision_s": statistics.median(twelve_qubit_times),
        "qaoa_12_qubits_p2_decisions": len(twelve_qubit_times),
    }


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean and 95% half-width of the per-decision difference ``a - b``."""
    d = np.asarray(a) - np.asarray(b)
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
    return {
        "mean": float(d.mean()),
        "ci95": float(half),
        "wins": int((d > 1e-9).sum()),
        "losses": int((d < -1e-9).sum()),
        "decisions": int(d.size),
    }


def case_study(episodes: int, steps: int) -> dict[str, Any]:
    env = gym.make(ENV_ID, scenario="case-study", horizon=steps)
    rewards: dict[str, list[float]] = {a: [] for a in CASE_AGENTS}
    times: dict[str, list[float]] = {a: [] for a in CASE_AGENTS}
    extra: dict[str, list] = {"qaoa_shots": [], "qaoa_sweeps": [], "qaoa_blocks": []}
    for episode in range(episodes):
        qaoa_shots: list[int] = []
        for name in CASE_AGENTS:
            obs, info = env.reset(seed=1000 + episode)
            agent = agents.make(name, env, seed=episode)
            for t in range(steps):
                if name == "random-sampling":  # QAOA's total shots of the same decision
                    agent.samples = qaoa_shots[t]
                action = agent.act(obs, info)
                times[name].append(agent.last_stats["decision_time_s"])
                if name == "qaoa":
                    qaoa_shots.append(agent.last_stats["shots"])
                    extra["qaoa_sweeps"].append(agent.last_stats["sweeps"])
                    extra["qaoa_blocks"].append(agent.last_stats["blocks"])
                obs, reward, _, _, info = env.step(action)
                rewards[name].append(reward)
        extra["qaoa_shots"].extend(qaoa_shots)
    return {
        "episodes": episodes,
        "steps": steps,
        "agents": {
            name: {
                "mean_reward_mbps": float(np.mean(rewards[name])),
                "ci95_mbps": float(
                    1.96 * np.std(rewards[name], ddof=1) / np.sqrt(len(rewards[name]))
                ),
                "median_decision_time_s": statistics.median(times[name]),
            }
            for name in CASE_AGENTS
        },
        # same channel realizations for every agent: paired differences per decision
        "paired_differences_mbps": {
            f"{a} - {b}": paired(rewards[a], rewards[b])
            for a in ("qaoa", "qaoa-qubo")
            for b in ("sca", "local-search", "random-sampling", "annealing")
        },
        "qaoa_median_shots_per_decision": statistics.median(extra["qaoa_shots"]),
        "qaoa_median_sweeps": statistics.median(extra["qaoa_sweeps"]),
        "qaoa_median_blocks": statistics.median(extra["qaoa_blocks"]),
    }


def pennylane_devices() -> dict[str, Any]:
    """Time of one 12-qubit qaoa-qubo decision per simulator."""
    env = gym.make(ENV_ID, num_devices=3, num_subchannels=2, num_power_levels=2)
    obs, info = env.reset(seed=0)
    out = {}
    for device in ("numpy", "lightning.qubit", "default.qubit"):
        agent = agents.make("qaoa-qubo", env, seed=0, device=device, variables="joint")
        start = time.perf_counter()
        action = agent.act(obs, info)
        out[device] = {
            "decision_s": time.perf_counter() - start,
            "qubits": agent.last_stats["qubits"],
            "reward_mbps": value_of(env, info, action),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seeds", type=int, default=5, help="instances per grid entry")
    parser.add_argument("--episodes", type=int, default=3, help="case-study episodes")
    parser.add_argument("--steps", type=int, default=5, help="decisions per episode")
    parser.add_argument("--pennylane", action="store_true", help="also time PennyLane devices")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    grid = small_grid(args.seeds)
    case = case_study(args.episodes, args.steps)
    g, c = grid["agents"], case["agents"]
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "small_grid": grid,
        "case_study": case,
        "qaoa_12_qubits_p2_target_s": 2.0,
        "qaoa_12_qubits_p2_meets_target": grid["qaoa_12_qubits_p2_median_decision_s"] <= 2.0,
        "qaoa_beats_sca": {
            "small_grid": g["qaoa"]["mean_ratio_to_optimum"] > g["sca"]["mean_ratio_to_optimum"],
            "case_study": c["qaoa"]["mean_reward_mbps"] > c["sca"]["mean_reward_mbps"],
        },
        "qaoa_beats_equal_budget_random_sampling": {
            "small_grid": g["qaoa"]["mean_ratio_to_optimum"]
            > g["random-sampling"]["mean_ratio_to_optimum"],
            "case_study": c["qaoa"]["mean_reward_mbps"] > c["random-sampling"]["mean_reward_mbps"],
        },
        "qaoa_qubo_beats_sca": {
            "small_grid": g["qaoa-qubo"]["mean_ratio_to_optimum"]
            > g["sca"]["mean_ratio_to_optimum"],
            "case_study": c["qaoa-qubo"]["mean_reward_mbps"] > c["sca"]["mean_reward_mbps"],
        },
    }
    if args.pennylane:
        result["pennylane_12_qubit_qubo_decision"] = pennylane_devices()
    result["wall_time_s"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(result, indent=1, default=float))
        return result
    print(
        f"Small-instance grid ({len(GRID)} settings x {args.seeds} seeds), "
        "ratio to the exhaustive optimum"
    )
    print(
        f"{'agent':<16} {'mean ratio':>10} {'min':>7} {'optimal':>8} {'time (ms)':>10} "
        f"{'evaluations':>12}"
    )
    for name, row in g.items():
        print(
            f"{name:<16} {row['mean_ratio_to_optimum']:>10.4f} "
            f"{row['min_ratio_to_optimum']:>7.3f} {row['fraction_optimal']:>8.2f} "
            f"{row['median_decision_time_s'] * 1e3:>10.1f} "
            f"{row['median_objective_evaluations']:>12.0f}"
        )
    print(
        f"QAOA 12 qubits, p=2: median decision "
        f"{grid['qaoa_12_qubits_p2_median_decision_s']:.3f} s (target <= 2 s)"
    )
    for key, entry in grid["qaoa"].items():
        print(f"  {key}: {entry}")
    print(
        f"\nCase study (K=50, N=4, L=4, eps=0.05): {args.episodes} episodes x "
        f"{args.steps} decisions"
    )
    print(f"{'agent':<16} {'reward (Mbit/s)':>22} {'time (ms)':>10}")
    for name, row in c.items():
        print(
            f"{name:<16} {row['mean_reward_mbps']:>12.2f} +/- {row['ci95_mbps']:<6.2f} "
            f"{row['median_decision_time_s'] * 1e3:>10.1f}"
        )
    for key, row in case["paired_differences_mbps"].items():
        print(
            f"  {key:<28} {row['mean']:+7.2f} +/- {row['ci95']:.2f} Mbit/s "
            f"(wins {row['wins']}, losses {row['losses']} of {row['decisions']})"
        )
    print(
        f"QAOA: median {case['qaoa_median_shots_per_decision']} shots, "
        f"{case['qaoa_median_blocks']} blocks, {case['qaoa_median_sweeps']} sweeps "
        "per decision"
    )
    print(
        f"QAOA beats SCA: {result['qaoa_beats_sca']}; beats equal-budget random "
        f"sampling: {result['qaoa_beats_equal_budget_random_sampling']}; "
        f"qaoa-qubo beats SCA: {result['qaoa_qubo_beats_sca']}"
    )
    for device, row in result.get("pennylane_12_qubit_qubo_decision", {}).items():
        print(f"12-qubit qaoa-qubo decision on {device}: {row['decision_s']:.2f} s")
    print(f"wall time {result['wall_time_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
