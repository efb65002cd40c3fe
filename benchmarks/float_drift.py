"""How far a seeded QFL-v0 episode drifts when only floating-point details change.

Runs the same seeded episode (same env seed, same agent seed) once per variant, each in
a fresh Python process (the CPU-dispatch variables are read at import), and prints how
far each variant's final test accuracy and loss land from the baseline, and from which
round the trajectory stops being bit-identical. Variants:

- ``baseline``: the package's settings (``torch_threads=1``, single precision);
- ``torch-2-threads``: ``torch_threads=2`` (intra-op parallel reductions);
- ``torch-avx2``: ``ATEN_CPU_CAPABILITY=avx2``, torch's AVX2 kernels instead of AVX-512
  (what an AVX2-only CPU runs);
- ``mkl-avx2``: ``MKL_CBWR=AVX2``, MKL's AVX2 code path (torch's float32 matrix
  products run in MKL);
- ``numpy-avx2``: numpy without its AVX-512 kernels (``NPY_DISABLE_CPU_FEATURES``), and
  OpenBLAS pinned to its Haswell (AVX2) kernels;
- ``avx2-machine``: both, plus ``MKL_CBWR=AVX2``: this program on an AVX2-only CPU;
- ``double``: ``precision="double"`` (complex128 state vectors);
- ``double-avx2-machine``: double precision on the emulated AVX2 machine.

Usage::

    python benchmarks/float_drift.py                       # small preset, sca, 10 rounds
    python benchmarks/float_drift.py --preset case-study --rounds 30 --agent sca
    python benchmarks/float_drift.py --agent fixed         # seeded actions, no feedback

With ``--agent fixed`` the actions are drawn from a seeded generator whatever the
observation, so the drift is the environment's alone; with an optimizer agent a tiny
difference in the observation can flip an allocation, which then changes the training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

AVX512_NUMPY = "X86_V4 AVX512_ICL AVX512_SPR"
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": AVX512_NUMPY,
    "OPENBLAS_CORETYPE": "Haswell",
    "MKL_CBWR": "AVX2",
}
VARIANTS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "baseline": ({}, {}),
    "torch-2-threads": ({}, {"torch_threads": 2}),
    "torch-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, {}),
    "mkl-avx2": ({"MKL_CBWR": "AVX2"}, {}),
    "numpy-avx2": (
        {"NPY_DISABLE_CPU_FEATURES": AVX512_NUMPY, "OPENBLAS_CORETYPE": "Haswell"},
        {},
    ),
    "avx2-machine": (AVX2_MACHINE, {}),
    "double": ({}, {"precision": "double"}),
    "double-avx2-machine": (AVX2_MACHINE, {"precision": "double"}),
}


def run_episode(preset: str, agent_name: str, rounds: int, seed: int, overrides: dict) -> dict:
    """One seeded episode: per-round loss/accuracy and the actions taken."""
    import gymnasium as gym
    import numpy as np

    import agents
    import qfl_gym  # noqa: F401

    env = gym.make("qfl_gym/QFL-v0", scenario=preset, rounds=rounds, **overrides)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    agent = None if agent_name == "fixed" else agents.make(agent_name, env, seed=seed)
    nvec = env.action_space.nvec
    loss, accuracy, actions = [], [], []
    start = time.perf_counter()
    for _ in range(rounds):
        action = rng.integers(nvec) if agent is None else agent.act(obs, info)
        obs, _, terminated, truncated, info = env.step(action)
        loss.append(float(info["global_loss"]))
        accuracy.append(float(info["global_accuracy"]))
        actions.append([int(a) for a in action])
        if terminated or truncated:
            break
    import numpy
    import torch
    from numpy._core._multiarray_umath import __cpu_features__ as cpu_features

    return {
        "numpy_avx512": bool(cpu_features.get("X86_V4")),
        "loss": loss,
        "accuracy": accuracy,
        "actions": actions,
        "seconds": time.perf_counter() - start,
        "torch_cpu": torch.backends.cpu.get_cpu_capability(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }


def compare(base: dict, other: dict) -> dict:
    """Final-accuracy and final-loss differences, first differing round, flipped rounds."""
    first = next(
        (r + 1 for r, (a, b) in enumerate(zip(base["loss"], other["loss"], strict=True)) if a != b),
        None,
    )
    flipped = sum(a != b for a, b in zip(base["actions"], other["actions"], strict=True))
    return {
        "final_accuracy": other["accuracy"][-1],
        "d_accuracy": other["accuracy"][-1] - base["accuracy"][-1],
        "final_loss": other["loss"][-1],
        "d_loss": other["loss"][-1] - base["loss"][-1],
        "max_abs_d_loss": max(abs(a - b) for a, b in zip(base["loss"], other["loss"], strict=True)),
        "first_different_round": first,
        "rounds_with_other_actions": flipped,
    }


def kernels(res: dict) -> str:
    """``"torch AVX512/np 512"``: the SIMD level torch and numpy ran with."""
    return f"{res['torch_cpu']}/np {'512' if res['numpy_avx512'] else 'avx2'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--agent", default="sca", help="an agents.make name, or 'fixed'")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        overrides = json.loads(args.child)
        out = run_episode(args.preset, args.agent, args.rounds, args.seed, overrides)
        print(json.dumps(out))
        return

    results = {}
    for name in args.variants.split(","):
        env_vars, overrides = VARIANTS[name]
        env = {**os.environ, **env_vars}
        cmd = [sys.executable, __file__, "--preset", args.preset, "--agent", args.agent]
        cmd += ["--rounds", str(args.rounds), "--seed", str(args.seed)]
        cmd += ["--child", json.dumps(overrides)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results["baseline"]
    print(
        f"QFL-v0 preset {args.preset!r}, agent {args.agent}, {len(base['loss'])} rounds, "
        f"seed {args.seed}; numpy {base['numpy']}, torch {base['torch']} "
        f"(baseline torch CPU kernels: {base['torch_cpu']})"
    )
    header = (
        f"{'variant':<22}{'final acc':>10}{'d acc':>10}{'final loss':>12}{'d loss':>11}"
        f"{'max|d loss|':>12}{'1st diff':>9}{'other act':>10}{'kernels':>16}{'time s':>8}"
    )
    print(header)
    for name, res in results.items():
        c = compare(base, res)
        first = "-" if c["first_different_round"] is None else str(c["first_different_round"])
        print(
            f"{name:<22}{c['final_accuracy']:>10.4f}{c['d_accuracy']:>+10.4f}"
            f"{c['final_loss']:>12.6f}{c['d_loss']:>+11.2e}{c['max_abs_d_loss']:>12.2e}"
            f"{first:>9}{c['rounds_with_other_actions']:>10}{kernels(res):>16}"
            f"{res['seconds']:>8.1f}"
        )


if __name__ == "__main__":
    main()
