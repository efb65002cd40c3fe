"""Quantum noise and finite shots: VQC accuracy and QAOA approximation ratio (run on demand).

Writes into a new folder ``<out-base>/quantum-noise-<timestamp>/`` (never an existing
one; ``--out DIR`` must be new or empty):

- ``vqc_accuracy.csv``: test accuracy and loss of the global model after ``--rounds``
  rounds of ``QFL-v0`` ``small`` over an error-free uplink (every update delivered, so
  only the quantum effects differ), per channel (``depolarizing`` p or
  ``amplitude-damping`` gamma), noise level, evaluation shots and seed;
- ``qaoa_ratio.csv``: QAOA on ``ChannelPower-v0`` ``small`` (K=4, N=2, L=2: one
  8-qubit block, ``p = 2``, CVaR 0.25, the agent's defaults) per instance, channel,
  noise level and shots: the approximation ratio ``reward(best of shots) / optimum``
  (mean over ``--resamples`` draws of the shots from the optimized noisy
  distribution), the expected ratio ``E[reward] / optimum`` of that distribution and,
  for reference, the best of as many uniformly random assignments;
- ``vqc_accuracy_vs_noise.png``, ``vqc_accuracy_vs_shots.png``,
  ``qaoa_ratio_vs_noise.png``, ``qaoa_ratio_vs_shots.png`` (means with min-max bands
  over seeds / instances);
- ``summary.json``: the means behind the figures and the speed of the noisy paths
  (``QFL-v0`` rounds/s ideal vs ``noisy-nisq``; QAOA seconds per 8-qubit decision
  ideal vs noisy).

Usage: ``python benchmarks/bench_quantum_noise.py [--json] [--quick] [--out DIR]``
(``--json`` prints the summary as one JSON object; ``--quick`` runs a reduced grid).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import agents
import qfl_gym  # noqa: F401
from agents.qaoa.agent import QAOAConfig, sample_basis, solve_block
from agents.qaoa.block import Block
from training_scripts.benchmark import claim_output_dir

QFL_ID = "qfl_gym/QFL-v0"
CP_ID = "qfl_gym/ChannelPower-v0"
CHANNELS = {"depolarizing": "depolarizing_p", "amplitude-damping": "amplitude_damping_gamma"}
EXACT = 0  # shots value standing for exact expectations in the CSV


# ------------------------------------------------------------------ VQC
def vqc_run(rounds: int, seed: int, **noise: Any) -> dict[str, float]:
    """Final accuracy/loss after ``rounds`` rounds with every update delivered."""
    env = gym.make(QFL_ID, scenario="small", packet_errors=False, update_bits=1.0, **noise)
    u = env.unwrapped
    K, N, L = u.codec.num_devices, u.codec.num_subchannels, u.codec.num_power_levels
    action = u.encode_action(np.arange(K) % N, np.full(K, L - 1))
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(rounds):
        _, _, _, _, info = env.step(action)
        assert info["delivered"].all()
    elapsed = time.perf_counter() - start
    return {
        "accuracy": info["global_accuracy"],
        "loss": info["global_loss"],
        "round_s": elapsed / rounds,
    }


def vqc_grid(levels, shots_grid, shot_levels, seeds, rounds) -> list[dict[str, Any]]:
    rows = []
    runs = [(ch, lvl, None) for ch in CHANNELS for lvl in levels]
    runs += [("depolarizing", lvl, s) for lvl in shot_levels for s in shots_grid]
    done = set()
    for channel, level, shots in runs:
        key = ("ideal" if level == 0 else channel, level, shots)
        if key in done:
            continue
        done.add(key)
        for seed in seeds:
            kw = {CHANNELS[channel]: level, "shots": shots}
            out = vqc_run(rounds, seed, **kw)
            rows.append(
                {
                    "channel": key[0],
                    "level": level,
                    "shots": EXACT if shots is None else shots,
                    "seed": seed,
                    "rounds": rounds,
                    **out,
                }
            )
    return rows


# ----------------------------------------------------------------- QAOA
def qaoa_instance(seed: int) -> Block:
    """The whole ``small`` ChannelPower-v0 problem of ``seed`` as one joint block."""
    env = gym.make(CP_ID, scenario="small")
    problem = env.reset(seed=seed)[1]["problem"]
    K = problem.num_devices
    return Block(problem, np.zeros(K, np.int64), np.zeros(K, np.int64), np.arange(K), "joint")


def qaoa_grid(levels, shots_grid, instances, resamples) -> list[dict[str, Any]]:
    rows = []
    for inst in instances:
        block = qaoa_instance(inst)
        table = block.reward_table()
        optimum = float(table.max())
        for channel in CHANNELS:
            for level in levels:
                if level == 0 and channel != "depolarizing":
                    continue
                name = "ideal" if level == 0 else channel
                cfg = QAOAConfig(**{CHANNELS[channel]: level}, max_qubits=8)
                sol = solve_block(block, cfg, np.random.default_rng(inst))
                cost = sol.cost
                values = cost.reward_table[block.tuple_index(cost.options)]
                expected = float(sol.probabilities @ values)
                rng = np.random.default_rng(1000 + inst)
                uniform = np.full(sol.probabilities.size, 1.0 / sol.probabilities.size)
                for shots in shots_grid:
                    best, rand = [], []
                    for _ in range(resamples):
                        for probs, out in ((sol.probabilities, best), (uniform, rand)):
                            basis = sample_basis(probs, shots, rng)
                            tuples = block.tuple_index(cost.options[basis])
                            out.append(float(cost.reward_table[tuples].max()))
                    rows.append(
                        {
                            "instance": inst,
                            "channel": name,
                            "level": level,
                            "shots": shots,
                            "ratio": statistics.mean(best) / optimum,
                            "expected_ratio": expected / optimum,
                            "random_ratio": statistics.mean(rand) / optimum,
                            "qubits": cost.num_qubits,
                        }
                    )
    return rows


# ---------------------------------------------------------------- speed
def speed(repeats: int, rounds: int) -> dict[str, float]:
    def rounds_per_s(scenario: str) -> float:
        env = gym.make(QFL_ID, scenario=scenario)
        env.reset(seed=0)
        env.action_space.seed(0)
        start = time.perf_counter()
        for _ in range(rounds):
            env.step(env.action_space.sample())
        return rounds / (time.perf_counter() - start)

    def decision_s(**options: Any) -> float:
        env = gym.make(CP_ID, scenario="small")
        obs, info = env.reset(seed=0)
        agent = agents.make("qaoa", env, seed=0, **options)
        start = time.perf_counter()
        agent.act(obs, info)
        return time.perf_counter() - start

    ideal, noisy, q_ideal, q_noisy = [], [], [], []
    for _ in range(repeats):  # interleaved: all see the same machine load
        ideal.append(rounds_per_s("small"))
        noisy.append(rounds_per_s("noisy-nisq"))
        q_ideal.append(decision_s())
        q_noisy.append(decision_s(depolarizing_p=0.01, amplitude_damping_gamma=0.005, max_qubits=8))
    return {
        "qfl_small_rounds_per_s": statistics.median(ideal),
        "qfl_noisy_nisq_rounds_per_s": statistics.median(noisy),
        "qaoa_8_qubit_decision_s": statistics.median(q_ideal),
        "qaoa_8_qubit_noisy_decision_s": statistics.median(q_noisy),
    }


# -------------------------------------------------------------- outputs
def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def aggregate(rows, keys, value) -> dict[tuple, tuple[float, float, float]]:
    """``{key: (mean, min, max)}`` of ``value`` grouped by ``keys``."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r[value])
    return {k: (statistics.mean(v), min(v), max(v)) for k, v in groups.items()}


def plot_lines(path, series, xlabel, ylabel, title, xscale="linear", hline=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, (xs, mean, lo, hi, style) in series.items():
        ax.plot(xs, mean, style, label=label, marker="o", ms=4)
        ax.fill_between(xs, lo, hi, alpha=0.08)  # min-max over seeds / instances
    if hline is not None:
        ax.axhline(hline[0], color="grey", ls=":", lw=1, label=hline[1])
    if xscale == "symlog":  # noise levels: 0 and a few decades of small values
        ticks = sorted({x for xs, *_ in series.values() for x in xs})
        positive = [x for x in ticks if x > 0]
        ax.set_xscale("symlog", linthresh=min(positive, default=1e-3), linscale=0.5)
        ax.set_xlim(0, max(ticks) * 1.15)
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks], fontsize=8)
        ax.minorticks_off()
    else:
        ax.set_xscale(xscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def series_from(agg, select, x_of):
    keys = sorted((k for k in agg if select(k)), key=x_of)
    xs = [x_of(k) for k in keys]
    return xs, [agg[k][0] for k in keys], [agg[k][1] for k in keys], [agg[k][2] for k in keys]


def figures(out: Path, vqc_rows, qaoa_rows, rounds: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    acc = aggregate(vqc_rows, ("channel", "level", "shots"), "accuracy")
    ideal = acc.get(("ideal", 0, EXACT), (np.nan,))[0]
    series = {}
    for ch in CHANNELS:
        xs, m, lo, hi = series_from(
            acc, lambda k, ch=ch: k[0] in (ch, "ideal") and k[2] == EXACT, lambda k: k[1]
        )
        series[ch] = (xs, m, lo, hi, "-")
        summary[f"vqc_accuracy_{ch}"] = dict(zip(map(str, xs), m, strict=True))
    plot_lines(
        out / "vqc_accuracy_vs_noise.png",
        series,
        "noise per qubit and gate layer (p or gamma)",
        f"test accuracy after {rounds} rounds",
        "QFL-v0 small, every update delivered, exact expectations",
        "symlog",
        (ideal, "ideal"),
    )
    series = {}
    shot_levels = sorted({k[1] for k in acc if k[2] != EXACT})
    for level in shot_levels:
        ch = "ideal" if level == 0 else "depolarizing"
        xs, m, lo, hi = series_from(
            acc,
            lambda k, ch=ch, level=level: k[:2] == (ch, level) and k[2] != EXACT,
            lambda k: k[2],
        )
        exact = acc.get((ch, level, EXACT))
        label = f"p = {level}"
        series[label] = (xs, m, lo, hi, "-")
        summary[f"vqc_accuracy_shots_p{level}"] = dict(zip(map(str, xs), m, strict=True)) | (
            {"exact": exact[0]} if exact else {}
        )
    plot_lines(
        out / "vqc_accuracy_vs_shots.png",
        series,
        "shots per test sample",
        f"test accuracy after {rounds} rounds",
        "QFL-v0 small: evaluation with finite shots (depolarizing p)",
        "log",
        (ideal, "ideal, exact"),
    )
    ratio = aggregate(qaoa_rows, ("channel", "level", "shots"), "ratio")
    expected = aggregate(qaoa_rows, ("channel", "level", "shots"), "expected_ratio")
    rand = aggregate(qaoa_rows, ("shots",), "random_ratio")
    shots_grid = sorted({r["shots"] for r in qaoa_rows})
    for ch in CHANNELS:
        series = {}
        for s in shots_grid:
            xs, m, lo, hi = series_from(
                ratio, lambda k, ch=ch, s=s: k[0] in (ch, "ideal") and k[2] == s, lambda k: k[1]
            )
            series[f"best of {s} shots"] = (xs, m, lo, hi, "-")
            summary[f"qaoa_ratio_{ch}_shots{s}"] = dict(zip(map(str, xs), m, strict=True))
        xs, m, lo, hi = series_from(
            expected,
            lambda k, ch=ch: k[0] in (ch, "ideal") and k[2] == shots_grid[0],
            lambda k: k[1],
        )
        series["expected (E[reward])"] = (xs, m, lo, hi, "--")
        summary[f"qaoa_expected_ratio_{ch}"] = dict(zip(map(str, xs), m, strict=True))
        plot_lines(
            out
            / ("qaoa_ratio_vs_noise.png" if ch == "depolarizing" else f"qaoa_ratio_vs_{ch}.png"),
            series,
            f"{ch} noise per qubit and gate layer",
            "approximation ratio (reward / optimum)",
            "QAOA p=2 on ChannelPower-v0 small (8 qubits, one block)",
            "symlog",
        )
    series = {}
    levels = sorted({k[1] for k in ratio if k[0] in ("ideal", "depolarizing")})
    for level in levels:
        ch = "ideal" if level == 0 else "depolarizing"
        xs, m, lo, hi = series_from(
            ratio, lambda k, ch=ch, level=level: k[:2] == (ch, level), lambda k: k[2]
        )
        series[f"p = {level}"] = (xs, m, lo, hi, "-")
    xs = shots_grid
    series["uniform random"] = (
        xs,
        [rand[(s,)][0] for s in xs],
        [rand[(s,)][1] for s in xs],
        [rand[(s,)][2] for s in xs],
        ":",
    )
    summary["qaoa_random_ratio"] = {str(s): rand[(s,)][0] for s in xs}
    plot_lines(
        out / "qaoa_ratio_vs_shots.png",
        series,
        "shots",
        "approximation ratio (best sample / optimum)",
        "QAOA p=2 on ChannelPower-v0 small: best of shots vs depolarizing p",
        "log",
    )
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="reduced grid (about a minute)")
    parser.add_argument("--out", type=Path, default=None, help="new or empty output folder")
    parser.add_argument("--out-base", type=Path, default=Path("results"))
    parser.add_argument("--rounds", type=int, default=None, help="VQC rounds (default 20)")
    parser.add_argument("--seeds", type=int, default=None, help="VQC seeds (default 3)")
    parser.add_argument("--instances", type=int, default=None, help="QAOA instances (default 5)")
    parser.add_argument("--resamples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="speed measurements")
    args = parser.parse_args(argv)
    if args.quick:
        levels = [0.0, 0.01, 0.05, 0.2]
        shots_grid, shot_levels = [10, 100, 1000], [0.0, 0.05]
        q_shots = [1, 10, 100]
        rounds, seeds, instances = args.rounds or 8, args.seeds or 2, args.instances or 2
    else:
        levels = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
        shots_grid, shot_levels = [10, 30, 100, 300, 1000], [0.0, 0.01, 0.05]
        q_shots = [1, 10, 100, 1000]
        rounds, seeds, instances = args.rounds or 20, args.seeds or 3, args.instances or 5
    out = claim_output_dir(args.out, args.out_base, "quantum-noise")
    start = time.perf_counter()
    vqc_rows = vqc_grid(levels, shots_grid, shot_levels, range(seeds), rounds)
    write_csv(out / "vqc_accuracy.csv", vqc_rows)
    qaoa_rows = qaoa_grid(levels, q_shots, range(instances), args.resamples)
    write_csv(out / "qaoa_ratio.csv", qaoa_rows)
    result = {
        "out": str(out),
        "rounds": rounds,
        "seeds": seeds,
        "instances": instances,
        "levels": levels,
        **figures(out, vqc_rows, qaoa_rows, rounds),
        "speed": speed(args.repeats, 30),
    }
    result["elapsed_s"] = time.perf_counter() - start
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {out}")
        for key, value in result.items():
            if isinstance(value, dict):
                cells = ", ".join(
                    f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                    for k, v in value.items()
                )
                print(f"{key:<40} {cells}")
    return result


if __name__ == "__main__":
    main()
