"""Digests of seeded trajectories of every preset: a bit-for-bit regression pin.

:func:`trajectory_digests` runs each case (env id, preset, single or native vector env)
for a few steps under seeded random actions and hashes every observation, reward,
termination flag and the numeric ``info`` values (``info["problem"]``: its gains).
``tests/data/pinned_trajectories.json`` holds the digests of the code the pins were
taken from; ``python tests/trajectory_pins.py`` rewrites it (only do so for a change
that is meant to alter trajectories, and say so in the commit message).

Digests are of float64/float32 bytes, so they hold on one machine and library stack;
another BLAS or torch build may differ in the last bits (see the reproducibility page).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import qfl_gym  # noqa: F401

PIN_FILE = Path(__file__).parent / "data" / "pinned_trajectories.json"

#: ``info`` keys added after the pins were taken (new reports, not a trajectory change):
#: left out of the digests, tested on their own
ADDED_INFO_KEYS = frozenset({"round_time_s", "wall_time_s"})

#: (name, env id, scenario, overrides, num_envs (None: single env), steps)
CASES: list[tuple[str, str, str, dict[str, Any], int | None, int]] = [
    *[
        (f"cp-{p}", "qfl_gym/ChannelPower-v0", p, {}, None, 70)
        for p in ("default", "small", "imperfect-sic", "case-study", "dense-mobile", "secrecy")
    ],
    ("cp-short-episodes", "qfl_gym/ChannelPower-v0", "default", {"horizon": 7}, None, 20),
    ("cp-vec-default", "qfl_gym/ChannelPower-v0", "default", {}, 4, 110),
    ("cp-vec-dense-mobile", "qfl_gym/ChannelPower-v0", "dense-mobile", {}, 3, 70),
    *[
        (f"qfl-{p}", "qfl_gym/QFL-v0", p, {}, None, 3)
        for p in ("small", "case-study", "secrecy", "private", "byzantine", "noisy-nisq")
    ],
    ("qfl-deliveries", "qfl_gym/QFL-v0", "small", {"objective": "deliveries"}, None, 3),
    ("qfl-short-episodes", "qfl_gym/QFL-v0", "small", {"rounds": 2}, None, 5),
    ("qfl-vec-small", "qfl_gym/QFL-v0", "small", {"rounds": 2}, 2, 5),
    ("qfl-vec-secrecy", "qfl_gym/QFL-v0", "secrecy", {}, 2, 3),
]


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            if key in ADDED_INFO_KEYS or key.lstrip("_") in ADDED_INFO_KEYS:
                continue
            h.update(key.encode())
            _feed(h, value[key])
    elif hasattr(value, "gains") and hasattr(value, "reward"):  # AllocationProblem
        _feed(h, np.asarray(value.gains))
        K, N = value.gains.shape
        channels = np.arange(K) % N  # its objective at a fixed assignment
        levels = np.arange(K) % value.num_power_levels
        _feed(h, np.float64(value.reward(channels, levels)))
    elif isinstance(value, np.ndarray) and value.dtype == object:
        for item in value.tolist():
            _feed(h, item)
    elif isinstance(value, np.ndarray | float | int | bool | np.number | np.bool_):
        a = np.ascontiguousarray(np.asarray(value))
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    elif value is None:
        h.update(b"None")


def run_case(
    env_id: str, scenario: str, overrides: dict[str, Any], num_envs: int | None, steps: int
) -> str:
    """sha256 of one seeded trajectory (actions drawn from a fixed generator)."""
    if num_envs is None:
        env = gym.make(env_id, scenario=scenario, **overrides)
        nvec = env.action_space.nvec
    else:
        env = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            scenario=scenario,
            **overrides,
        )
        nvec = env.single_action_space.nvec
    rng = np.random.default_rng(12345)
    h = hashlib.sha256()
    obs, info = env.reset(seed=7)
    _feed(h, obs)
    _feed(h, info)
    for _ in range(steps):
        shape = nvec.shape if num_envs is None else (num_envs, *nvec.shape)
        action = rng.integers(0, nvec, size=shape)
        obs, reward, terminated, truncated, info = env.step(action)
        for value in (obs, reward, terminated, truncated, info):
            _feed(h, value)
        if num_envs is None and (terminated or truncated):
            obs, info = env.reset()
            _feed(h, obs)
            _feed(h, info)
    env.close()
    return h.hexdigest()


def trajectory_digests(names: list[str] | None = None) -> dict[str, str]:
    return {
        name: run_case(env_id, scenario, overrides, n, steps)
        for name, env_id, scenario, overrides, n, steps in CASES
        if names is None or name in names
    }


if __name__ == "__main__":
    digests = trajectory_digests(sys.argv[1:] or None)
    old = json.loads(PIN_FILE.read_text()) if PIN_FILE.exists() else {}
    old.update(digests)
    PIN_FILE.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    print(json.dumps(digests, indent=1))
