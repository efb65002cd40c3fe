"""Seeded trajectories of every preset stay bit-for-bit what they were when pinned."""

from __future__ import annotations

import json

import pytest
from trajectory_pins import CASES, PIN_FILE, run_case

PINS = json.loads(PIN_FILE.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_pin(case):
    name, env_id, scenario, overrides, num_envs, steps = case
    assert name in PINS, f"no pin for {name}: run python tests/trajectory_pins.py {name}"
    assert run_case(env_id, scenario, overrides, num_envs, steps) == PINS[name]
