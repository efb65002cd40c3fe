"""Every agent behind one interface: valid actions on every env id and preset, determinism."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym
from qfl_gym import registration

# Cheap settings for the expensive optimizers: the property under test is the
# interface (a valid action on every env and preset), not solution quality.
FAST: dict[str, dict] = {
    "qaoa": {"p": 1, "maxiter": 10, "shots": 16, "max_sweeps": 1},
    "qaoa-qubo": {"p": 1, "maxiter": 10, "shots": 16, "max_sweeps": 1},
    "annealing": {"num_reads": 8, "num_sweeps": 20, "max_sweeps": 1},
    "local-search": {"max_sweeps": 1},
    "sca": {"max_outer": 1, "max_iter": 5},
}
# sb3 and device-policy load or train weights for the env at hand (tests/test_agents_rl.py,
# tests/test_device_policy.py): a fresh recipe per preset would train for minutes;
# pretrained refuses envs no shipped weights fit (tests/test_pretrained.py)
OPTIMIZERS = [
    name for name in agents.available() if name not in ("sb3", "device-policy", "pretrained")
]


def presets(env_id: str) -> list[str]:
    """Preset names of an env id (every preset of every registered env)."""
    return list(registration.env_presets(env_id))


CASES = [(env_id, preset) for env_id in qfl_gym.ENV_IDS for preset in presets(env_id)]


@cache
def first_decision(env_id: str, preset: str):
    env = gym.make(env_id, scenario=preset)
    obs, info = env.reset(seed=0)
    return env, obs, info


@pytest.mark.parametrize("env_id,preset", CASES)
def test_every_agent_returns_a_valid_action_on_every_env_and_preset(env_id, preset):
    env, obs, info = first_decision(env_id, preset)
    codec = env.unwrapped.codec
    for name in OPTIMIZERS:
        try:
            agent = agents.make(name, env, seed=0, **FAST.get(name, {}))
        except ValueError as exc:  # exhaustive refuses large problems, by design
            assert name == "exhaustive" and "max_assignments" in str(exc)
            continue
        action = agent.act(obs, info)
        assert env.action_space.contains(np.asarray(action)), (name, action)
        codec.validate(action)
        stats = agent.last_stats
        assert stats["decision_time_s"] >= 0 and stats["objective_evaluations"] >= 0, name
        if name.startswith("qaoa"):
            assert {"qubits", "depth", "shots", "circuit_executions"} <= stats.keys()


@pytest.mark.parametrize(
    "name,kwargs",
    [(name, FAST.get(name, {})) for name in OPTIMIZERS]
    + [("qaoa", {"p": 1, "maxiter": 10, "max_qubits": 6})],  # block coordinate descent
)
def test_seeded_agents_are_deterministic(name, kwargs):
    env = gym.make(
        "qfl_gym/ChannelPower-v0",
        num_devices=5,
        num_subchannels=2,
        num_power_levels=2,
        sic_residual=0.05,
    )
    obs, info = env.reset(seed=3)
    obs2, _, _, _, info2 = env.step(env.action_space.sample())
    a, b = agents.make(name, env, seed=7, **kwargs), agents.make(name, env, seed=7, **kwargs)
    first = [a.act(obs, info), a.act(obs2, info2)]
    np.testing.assert_array_equal(first, [b.act(obs, info), b.act(obs2, info2)])
    a.reset(seed=7)
    np.testing.assert_array_equal(first, [a.act(obs, info), a.act(obs2, info2)])


def test_optimizers_need_the_info_dict():
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="info"):
        agents.make("sca", env).act(obs)


def test_unknown_names_list_the_valid_ones():
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    with pytest.raises(ValueError, match=r"qaoa-qubo.*random-sampling.*sca"):
        agents.make("qaoa2", env)
    assert {"sca", "exhaustive", "random-sampling", "annealing", "qaoa", "qaoa-qubo", "sb3"} <= set(
        agents.available()
    )


def test_agents_work_through_wrappers():
    env = gym.wrappers.RecordEpisodeStatistics(
        gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    )
    obs, info = env.reset(seed=0)
    for name in ("qaoa", "sca", "annealing"):
        env.step(agents.make(name, env, seed=0, **FAST[name]).act(obs, info))


def test_importing_agents_imports_no_heavy_frameworks():
    code = (
        "import sys, gymnasium as gym, qfl_gym, agents;"
        "env = gym.make('qfl_gym/ChannelPower-v0', scenario='small');"
        "o, i = env.reset(seed=0);"
        "[agents.make(n, env, seed=0).act(o, i) for n in "
        "('qaoa', 'sca', 'exhaustive', 'random-sampling')];"
        "print(sorted(m for m in ('torch', 'pennylane', 'stable_baselines3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
