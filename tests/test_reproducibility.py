"""Thread pinning (qfl_gym.reproducibility) and bit-identical reruns whatever the thread
settings of the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> str:
    """stdout of ``code`` in a fresh interpreter with ``env`` added."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_pin_threads_covers_loaded_pools_torch_and_child_processes():
    code = """
import json, os, subprocess, sys
import numpy, torch
from threadpoolctl import threadpool_info
from qfl_gym.reproducibility import pin_threads, numerics_record
done = pin_threads(1)
child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                       capture_output=True, text=True).stdout.strip()
record = numerics_record()
print(json.dumps({"done": done, "torch": torch.get_num_threads(), "child": child,
                  "pools": sorted({i["num_threads"] for i in threadpool_info()}),
                  "record": record}))
"""
    out = json.loads(run_python(code, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2"))
    assert out["done"]["env"] == dict.fromkeys(
        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"
    )
    assert out["torch"] == 1 and out["done"]["torch_threads"] == 1
    assert out["child"] == "1"  # inherited through the environment variables
    assert out["pools"] == [1]
    record = out["record"]
    assert record["torch_threads"] == 1
    assert record["torch_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX")
    assert isinstance(record["numpy_simd"], list) and record["numpy"]


def test_bad_thread_count_is_a_value_error():
    from qfl_gym.reproducibility import pin_threads

    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        pin_threads(0)


def test_every_cli_command_runs_pinned():
    code = """
import os
from training_scripts.cli import main
assert main(["envs", "--env", "qfl_gym/ChannelPower-v0"]) == 0
import torch
print(os.environ["OMP_NUM_THREADS"], os.environ["OPENBLAS_NUM_THREADS"], torch.get_num_threads())
"""
    assert run_python(code, OMP_NUM_THREADS="2") == "1 1 1"


EPISODE = """
import json
import gymnasium as gym
import numpy as np
import qfl_gym
env = gym.make("qfl_gym/QFL-v0", scenario="small", rounds=4)
obs, info = env.reset(seed=3)
rng = np.random.default_rng(3)
out = []
for _ in range(4):
    obs, reward, *_, info = env.step(rng.integers(env.action_space.nvec))
    out.append([float(reward).hex(), float(info["global_loss"]).hex(), obs.tobytes().hex()])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_qfl_episode_is_bit_identical_whatever_the_machine_thread_settings():
    # the learning config pins torch to one thread, so the OpenMP/BLAS defaults of the
    # machine (here 1 or 2 threads) do not reach the result
    one = run_python(EPISODE, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    two = run_python(EPISODE, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    assert one == two


def test_training_records_the_numeric_environment(tmp_path, capsys):
    from training_scripts.cli import main

    out = tmp_path / "run"
    args = ["train", "--env", "qfl_gym/ChannelPower-v0", "--scenario", "small"]
    args += ["--timesteps", "64", "--n-envs", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    numerics = json.loads((out / "run.json").read_text())["numerics"]
    assert numerics["torch_threads"] == 1
    assert numerics["env"]["OMP_NUM_THREADS"] == "1"
    assert {"numpy", "numpy_simd", "blas", "torch", "torch_cpu_capability"} <= set(numerics)
