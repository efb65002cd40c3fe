"""Speed of QFL-v0 and of batched VQC local training (run on demand).

Measures, in one run (medians over ``--repeats``):

- ``small_rounds_per_s``: ``gym.make("qfl_gym/QFL-v0", scenario="small")`` federated
  rounds per second (default wrappers, random actions, resets included);
- ``local_training_samples_per_s``: training samples processed per second by the batched
  local training of the ``small`` preset (forward + backward + Adam, all 8 devices at
  once), in single (complex64, the default) and double (complex128) precision;
- ``naive_samples_per_s``: the same local training as a plain per-device loop over a
  PennyLane ``default.qubit`` qnode (torch interface, backprop, the minibatch broadcast
  in one qnode call, one ``torch.optim.Adam`` per device; same torch thread setting as
  the fast path), and the speed-up ratio;
- ``case_study_round_s``: seconds per ``case-study`` round (50 devices, 8 qubits).

Targets: small >= 20 rounds/s; >= 10x the naive reference; a case-study
round <= 1 s.

Usage: ``python benchmarks/bench_qfl.py [--json] [--repeats 5]``
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
from qfl_gym.envs.qfl_scenario import QFL_PRESETS
from qfl_gym.learning.circuit import make_qnode
from qfl_gym.learning.federated import FederatedLearner
from qfl_gym.learning.model import cross_entropy
from qfl_gym.learning.training import torch_threads


def env_rounds_per_s(scenario: str, rounds: int, seed: int = 0) -> float:
    """Rounds/s of the registered env with random actions (resets included)."""
    env = gym.make("qfl_gym/QFL-v0", scenario=scenario)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(rounds):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return rounds / (time.perf_counter() - start)


def env_round_seconds(scenario: str, rounds: int, seed: int = 0) -> list[float]:
    """Seconds per env step (one round each), random actions, after one reset."""
    env = gym.make("qfl_gym/QFL-v0", scenario=scenario)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    out = []
    for _ in range(rounds):
        action = env.action_space.sample()
        start = time.perf_counter()
        env.step(action)
        out.append(time.perf_counter() - start)
    return out


def fast_samples_per_s(precision: str, rounds: int) -> float:
    """Samples/s of the batched local training of the small preset."""
    sc = QFL_PRESETS["small"]
    learner = FederatedLearner(sc.learning.replace(precision=precision), sc.num_devices)
    learner.reset(np.random.default_rng(0))
    learner.local_train()  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        learner.local_train()
    return learner.trainer.samples_per_round * rounds / (time.perf_counter() - start)


def naive_samples_per_s(rounds: int) -> float:
    """Samples/s of the naive reference: a per-device loop over a default.qubit qnode."""
    sc = QFL_PRESETS["small"]
    cfg = sc.learning
    learner = FederatedLearner(cfg, sc.num_devices)  # same data and partition
    learner.reset(np.random.default_rng(0))
    data, part = learner.data, learner.partition
    spec = learner.spec
    qnode = make_qnode(spec.n_qubits, spec.n_layers, spec.num_measured, "default.qubit")
    x_all = torch.as_tensor(data.x_train)
    y_all = torch.as_tensor(data.y_train)
    global_params = learner.global_params.clone()
    rng = np.random.default_rng(0)
    samples = 0
    threads = torch_threads(cfg.torch_threads)  # same thread setting as the fast path
    threads.__enter__()
    start = time.perf_counter()
    for _ in range(rounds):
        for k in range(sc.num_devices):  # one device after the other
            params = global_params.clone().requires_grad_(True)
            opt = torch.optim.Adam([params], lr=cfg.learning_rate)
            idx = part.device_indices(k)
            for _epoch in range(cfg.local_epochs):
                order = rng.permutation(idx)
                for b in range(0, order.size, cfg.batch_size):
                    batch = torch.as_tensor(order[b : b + cfg.batch_size])
                    out = qnode(x_all[batch], spec.rotation_weights(params))
                    expvals = torch.stack([o.reshape(-1) for o in out], dim=-1)
                    logits = spec.logits(params[None], expvals[None])[0]
                    loss = cross_entropy(logits, y_all[batch]).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    samples += batch.numel()
    elapsed = time.perf_counter() - start
    threads.__exit__(None, None, None)
    return samples / elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=150, help="small rounds per repeat")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    small, single, double, naive, case = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved, so all see the same machine load
        small.append(env_rounds_per_s("small", args.rounds))
        single.append(fast_samples_per_s("single", 20))
        double.append(fast_samples_per_s("double", 20))
        naive.append(naive_samples_per_s(1))
        case.extend(env_round_seconds("case-study", 5))
    speedups = [a / b for a, b in zip(single, naive, strict=True)]
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "repeats": args.repeats,
        "small_rounds_per_s": statistics.median(small),
        "small_rounds_per_s_target": 20.0,
        "local_training_samples_per_s": statistics.median(single),
        "local_training_samples_per_s_double": statistics.median(double),
        "naive_samples_per_s": statistics.median(naive),
        "speedup_vs_naive": statistics.median(speedups),
        "speedup_target": 10.0,
        "case_study_round_s": statistics.median(case),
        "case_study_round_s_target": 1.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        r = result
        print(
            f"QFL-v0 small              {r['small_rounds_per_s']:>10.1f} rounds/s  (target >= 20)"
        )
        print(f"local training, complex64 {r['local_training_samples_per_s']:>10,.0f} samples/s")
        double = r["local_training_samples_per_s_double"]
        print(f"local training, complex128{double:>10,.0f} samples/s")
        print(f"naive PennyLane loop      {r['naive_samples_per_s']:>10,.0f} samples/s")
        print(f"speed-up                  {r['speedup_vs_naive']:>10.1f} x  (target >= 10)")
        print(f"case-study round          {r['case_study_round_s']:>10.3f} s  (target <= 1)")
    return result


if __name__ == "__main__":
    main()
