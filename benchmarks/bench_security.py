"""Security and privacy in the QFL system: poisoning, differential privacy, eavesdropping.

Measures, in one run (``--section`` picks one):

- **poisoning**: test accuracy after ``--rounds`` federated rounds vs the fraction of
  malicious devices (0 to 40%), per aggregation rule (fedavg, median, trimmed-mean,
  krum) and attack (sign-flip, scaled, random, label-flip); ``FederatedLearner``
  driven directly with every update delivered (K = 10, digits 0-3, 4-qubit VQCs, IID
  shards), mean over ``--seeds`` seeds. Robust rules use ``robust_fraction =
  max(0.2, attacker fraction)``; Krum is skipped where it cannot tolerate the count.
- **privacy**: epsilon (delta = 1e-5) vs rounds for several noise multipliers z
  (central and local placement, RDP and PLD accountants of ``dp_accounting``), and
  test accuracy vs z with DP-FedAvg (central, C = 0.5) on the same task; the median
  honest update norm (to judge C).
- **secrecy**: ChannelPower-v0 steps/s without and with eavesdroppers (random actions,
  median of ``--repeats``), and mean sum rate / secrecy sum rate of the random,
  strongest and greedy agents on the ``secrecy`` preset for each eavesdropper
  decoding model.

Writes CSV files and PNG figures to ``--out`` (default ``results/security``).

Usage: ``python benchmarks/bench_security.py [--json] [--section all] [--seeds 3]
[--rounds 15] [--out results/security] [--no-plots]``
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import qfl_gym  # noqa: F401

K = 10
TASK = {"dataset": "digits", "classes": (0, 1, 2, 3), "partition": "iid"}
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4)
RULES = ("fedavg", "median", "trimmed-mean", "krum")
ATTACKS = ("sign-flip", "scaled", "random", "label-flip")
NOISE_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)


def _learner(rule: str, poisoning=None, privacy=None):
    from qfl_gym.learning.config import LearningConfig
    from qfl_gym.learning.federated import FederatedLearner

    return FederatedLearner(
        LearningConfig(aggregation=rule, **TASK), K, privacy=privacy, poisoning=poisoning
    )


def _final_accuracy(learner, seed: int, rounds: int) -> float:
    learner.reset(np.random.default_rng(seed))
    delivered = np.ones(K, bool)
    for _ in range(rounds):
        result = learner.run_round(delivered)
    return float(result.global_accuracy)


# ------------------------------------------------------------------ poisoning
def poisoning(seeds: int, rounds: int) -> list[dict[str, Any]]:
    from qfl_gym.learning.attacks import PoisoningConfig

    rows = []
    for attack in ATTACKS:
        for rule in RULES:
            for fraction in FRACTIONS:
                config = PoisoningConfig(
                    attacker_fraction=fraction,
                    attack=attack,
                    robust_fraction=min(max(0.2, fraction), 0.49),
                )
                try:
                    learner = _learner(rule, poisoning=config)
                except ValueError:  # the rule cannot tolerate this many attackers
                    acc = [float("nan")]
                else:
                    acc = [_final_accuracy(learner, s, rounds) for s in range(seeds)]
                rows.append(
                    {
                        "attack": attack,
                        "rule": rule,
                        "attacker_fraction": fraction,
                        "accuracy": float(np.mean(acc)),
                        "accuracy_min": float(np.min(acc)),
                        "accuracy_max": float(np.max(acc)),
                    }
                )
    return rows


# -------------------------------------------------------------------- privacy
def privacy_epsilons(rounds: int) -> list[dict[str, Any]]:
    from qfl_gym.learning.privacy import PrivacyAccountant

    rows = []
    for z in NOISE_MULTIPLIERS:
        for placement, multiplier in (("central", z), ("local", z / 2)):
            for accountant in ("rdp", "pld"):
                acc = PrivacyAccountant(multiplier, 1e-5, accountant)
                for r in range(1, rounds + 1):
                    rows.append(
                        {
                            "noise_multiplier": z,
                            "placement": placement,
                            "accountant": accountant,
                            "rounds": r,
                            "epsilon": acc.epsilon(r),
                        }
                    )
    return rows


def privacy_accuracy(seeds: int, rounds: int) -> tuple[list[dict[str, Any]], float]:
    from qfl_gym.learning.privacy import PrivacyConfig, dp_epsilon

    clip = 0.5
    rows = []
    baseline = _learner("fedavg")
    acc = [_final_accuracy(baseline, s, rounds) for s in range(seeds)]
    rows.append({"noise_multiplier": "off", "accuracy": float(np.mean(acc)), "epsilon": None})
    # typical honest update norm of this task (first round, all devices)
    baseline.reset(np.random.default_rng(0))
    local, _ = baseline.local_train()
    norms = np.linalg.norm(local.double().numpy() - baseline.global_params.numpy(), axis=1)
    for z in (0.0, *NOISE_MULTIPLIERS):
        learner = _learner(
            "fedavg", privacy=PrivacyConfig(dp_clip_norm=clip, dp_noise_multiplier=z)
        )
        acc = [_final_accuracy(learner, s, rounds) for s in range(seeds)]
        rows.append(
            {
                "noise_multiplier": z,
                "accuracy": float(np.mean(acc)),
                "epsilon": dp_epsilon(z, rounds) if z else float("inf"),
            }
        )
    return rows, float(np.median(norms))


# -------------------------------------------------------------------- secrecy
def steps_per_s(repeats: int, steps: int = 20_000, **kwargs: Any) -> float:
    out = []
    for _ in range(repeats):
        env = gym.make("qfl_gym/ChannelPower-v0", **kwargs)
        env.reset(seed=0)
        env.action_space.seed(0)
        sample, step, reset = env.action_space.sample, env.step, env.reset
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = step(sample())
            if terminated or truncated:
                reset()
        out.append(steps / (time.perf_counter() - start))
    return statistics.median(out)


def secrecy_agents(seeds: int, steps: int = 100) -> list[dict[str, Any]]:
    import agents

    rows = []
    for decoding in ("interference", "sic", "genie"):
        for name in ("random", "strongest", "greedy"):
            rate, secrecy = [], []
            for seed in range(seeds):
                env = gym.make(
                    "qfl_gym/ChannelPower-v0", scenario="secrecy", eavesdropper_decoding=decoding
                )
                agent = agents.make(name, env, seed=seed)
                obs, info = env.reset(seed=seed)
                for _ in range(steps):
                    obs, _, _, _, info = env.step(agent.act(obs, info))
                    rate.append(info["sum_rate_bps"])
                    secrecy.append(info["secrecy_sum_rate_bps"])
            rows.append(
                {
                    "decoding": decoding,
                    "agent": name,
                    "sum_rate_mbps": float(np.mean(rate)) / 1e6,
                    "secrecy_sum_rate_mbps": float(np.mean(secrecy)) / 1e6,
                }
            )
    return rows


# ---------------------------------------------------------------------- output
def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_poisoning(rows: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(4 * len(ATTACKS), 3.4), sharey=True)
    for ax, attack in zip(axes, ATTACKS, strict=True):
        for rule in RULES:
            pts = [r for r in rows if r["attack"] == attack and r["rule"] == rule]
            ax.plot(
                [100 * r["attacker_fraction"] for r in pts],
                [r["accuracy"] for r in pts],
                marker="o",
                label=rule,
            )
        ax.set_title(attack)
        ax.set_xlabel("malicious devices (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_privacy(eps_rows: list[dict[str, Any]], acc_rows: list[dict[str, Any]], path: Path):
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, z in enumerate(NOISE_MULTIPLIERS):
        for placement, style in (("central", "-"), ("local", "--")):
            pts = [
                r
                for r in eps_rows
                if r["noise_multiplier"] == z
                and r["placement"] == placement
                and r["accountant"] == "pld"
            ]
            ax.plot(
                [r["rounds"] for r in pts],
                [r["epsilon"] for r in pts],
                style,
                color=f"C{i}",
                label=f"z={z:g} {placement}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("rounds a device was released")
    ax.set_ylabel("epsilon (delta = 1e-5, PLD)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    pts = [r for r in acc_rows if r["noise_multiplier"] != "off"]
    bx.plot([r["noise_multiplier"] for r in pts], [r["accuracy"] for r in pts], marker="o")
    off = next(r for r in acc_rows if r["noise_multiplier"] == "off")
    bx.axhline(off["accuracy"], color="grey", ls=":", label="no DP")
    bx.set_xlabel("noise multiplier z (central, C = 0.5)")
    bx.set_ylabel("test accuracy")
    bx.legend()
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--section", choices=("all", "poisoning", "privacy", "secrecy"), default="all"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    parser.add_argument("--out", type=Path, default=Path("results/security"))
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "seeds": args.seeds,
        "rounds": args.rounds,
    }
    run = {args.section} if args.section != "all" else {"poisoning", "privacy", "secrecy"}
    if "poisoning" in run:
        rows = poisoning(args.seeds, args.rounds)
        write_csv(rows, args.out / "poisoning.csv")
        if not args.no_plots:
            plot_poisoning(rows, args.out / "poisoning.png")
        result["poisoning"] = rows
    if "privacy" in run:
        eps_rows = privacy_epsilons(30)
        acc_rows, norm = privacy_accuracy(args.seeds, args.rounds)
        write_csv(eps_rows, args.out / "privacy_epsilon.csv")
        write_csv(acc_rows, args.out / "privacy_accuracy.csv")
        if not args.no_plots:
            plot_privacy(eps_rows, acc_rows, args.out / "privacy.png")
        result["privacy_epsilon_after_30_rounds"] = [r for r in eps_rows if r["rounds"] == 30]
        result["privacy_accuracy"] = acc_rows
        result["median_update_norm"] = norm
    if "secrecy" in run:
        result["channel_power_steps_per_s"] = steps_per_s(args.repeats)
        result["channel_power_secrecy_steps_per_s"] = steps_per_s(args.repeats, scenario="secrecy")
        rows = secrecy_agents(args.seeds)
        write_csv(rows, args.out / "secrecy.csv")
        result["secrecy_agents"] = rows
    if args.json:
        print(json.dumps(result, default=float))
    else:
        print(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()
