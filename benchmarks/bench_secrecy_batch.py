"""Eavesdroppers of n cells: one batched channel vs a loop of single channels.

Measures, per env-step (one cell, one slot), the time of the secrecy outcome of a random
assignment plus the eavesdroppers' step, for ``n = 1`` and ``n = 256`` cells:

- **batched**: one :class:`~qfl_gym.wireless.secrecy.EavesdropperChannelBatch` of
  ``n`` cells (``outcome`` on (n, K) arrays, ``step``);
- **loop**: ``n`` :class:`~qfl_gym.wireless.secrecy.EavesdropperChannel` objects, one
  ``outcome`` and ``step`` each (what a vector env looping over sub-environments does).

Scenarios: the ChannelPower ``secrecy`` preset (K = 10, N = 4, E = 2 fixed
eavesdroppers, SIC decoding) and ``dense-mobile`` with two dropped eavesdroppers (K = 64,
N = 8, moving devices: the path loss to the eavesdroppers is recomputed every slot).
The anchor is ``gym.make("CartPole-v1")`` steps/s with random actions, measured in the
same run, interleaved with the repeats; figures are medians over ``--repeats``.

Every fading block (64 slots) runs the Gauss-Markov recursion as a (64 x 64) @ (64 x
2 E K N) product per cell; ``--blas-threads`` (default 1) caps the BLAS threads, since
multi-threaded BLAS on a busy machine can be many times slower than one thread.

Usage: ``python benchmarks/bench_secrecy_batch.py [--json] [--repeats 3]
[--blas-threads 1]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np
from bench_channel_power import env_steps_per_s  # a sibling script (benchmarks/ on the path)

from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig
from qfl_gym.wireless.secrecy import EavesdropperChannel, EavesdropperChannelBatch

SCENARIOS: dict[str, UplinkConfig] = {
    "secrecy": UPLINK_PRESETS["secrecy"],
    "dense-mobile+2eve": UPLINK_PRESETS["dense-mobile"].replace(num_eavesdroppers=2),
}
CELLS = (1, 256)


def _inputs(cfg: UplinkConfig, n: int, slots: int) -> dict[str, np.ndarray]:
    """Device positions (n, K, 2) and ``slots`` random assignments, powers and rates."""
    rng = np.random.default_rng(0)
    K = cfg.num_devices
    legit = UplinkChannel(cfg)
    positions = []
    for _ in range(n):
        legit.reset(rng)
        positions.append(legit.positions_m)
    levels = rng.integers(0, cfg.num_power_levels, (slots, n, K))
    return {
        "positions": np.stack(positions),
        "channels": rng.integers(0, cfg.num_subchannels, (slots, n, K)),
        "power": cfg.power_levels_w.take(levels),
        "rate": rng.uniform(0.0, 2e7, (slots, n, K)),
    }


def batched_us(cfg: UplinkConfig, n: int, slots: int) -> float:
    """Microseconds per env-step of the batched channel."""
    x = _inputs(cfg, n, slots)
    moves = bool(cfg.mobility) and cfg.speed_mps > 0
    eve = EavesdropperChannelBatch(cfg, n)
    eve.reset([np.random.default_rng(i) for i in range(n)], x["positions"])
    moved = x["positions"] if moves else None
    start = time.perf_counter()
    for t in range(slots):
        eve.outcome(x["channels"][t], x["power"][t], x["rate"][t])
        eve.step(moved)
    return 1e6 * (time.perf_counter() - start) / (slots * n)


def loop_us(cfg: UplinkConfig, n: int, slots: int) -> float:
    """Microseconds per env-step of ``n`` single channels in a Python loop."""
    x = _inputs(cfg, n, slots)
    moves = bool(cfg.mobility) and cfg.speed_mps > 0
    eves = [EavesdropperChannel(cfg) for _ in range(n)]
    for i, eve in enumerate(eves):
        eve.reset(np.random.default_rng(i), x["positions"][i])
    start = time.perf_counter()
    for t in range(slots):
        ch, power, rate = x["channels"][t], x["power"][t], x["rate"][t]
        for i, eve in enumerate(eves):
            eve.outcome(ch[i], power[i], rate[i])
            eve.step(x["positions"][i] if moves else None)
    return 1e6 * (time.perf_counter() - start) / (slots * n)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--env-steps", type=int, default=20_000, help="env-steps per timing")
    parser.add_argument("--blas-threads", type=int, default=1, help="0: the BLAS default")
    args = parser.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.blas_threads, user_api="blas"):
            return _measure(args)
    return _measure(args)


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    cartpole: list[float] = []
    times: dict[tuple[str, int, str], list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so all see the same machine load
        cartpole.append(env_steps_per_s("CartPole-v1", 20_000))
        for name, cfg in SCENARIOS.items():
            for n in CELLS:
                slots = max(args.env_steps // n, 20)
                times.setdefault((name, n, "batched"), []).append(batched_us(cfg, n, slots))
                times.setdefault((name, n, "loop"), []).append(loop_us(cfg, n, slots))
    anchor = statistics.median(cartpole)
    rows = []
    for (name, n, mode), values in times.items():
        us = statistics.median(values)
        rows.append(
            {
                "scenario": name,
                "cells": n,
                "mode": mode,
                "us_per_env_step": us,
                "env_steps_per_s": 1e6 / us,
                "ratio_to_cartpole": 1e6 / us / anchor,
            }
        )
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "repeats": args.repeats,
        "blas_threads": args.blas_threads or "default",
        "cartpole_steps_per_s": anchor,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"CartPole-v1 (single env): {anchor:,.0f} steps/s")
        print("secrecy outcome + eavesdropper step, per env-step")
        print(f"{'scenario':<20} {'n':>4} {'mode':<8} {'us':>8} {'steps/s':>12} {'x CartPole':>10}")
        for r in rows:
            print(
                f"{r['scenario']:<20} {r['cells']:>4} {r['mode']:<8} "
                f"{r['us_per_env_step']:>8.2f} {r['env_steps_per_s']:>12,.0f} "
                f"{r['ratio_to_cartpole']:>10.2f}"
            )
    return result


if __name__ == "__main__":
    main()
