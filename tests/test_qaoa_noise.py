"""Noisy QAOA: the numpy density matrix equals PennyLane's
``default.mixed`` (energies and adjoint gradients), limits of the channels are exact,
and the agent's noise options are validated and deterministic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym  # noqa: F401
from agents.qaoa.agent import make_simulator
from agents.qaoa.angles import cvar_objective
from agents.qaoa.block import Block
from agents.qaoa.noise import MAX_NOISY_QUBITS, DensityMatrixQAOA
from agents.qaoa.qubo import build_cost
from agents.qaoa.simulator import StateVectorQAOA

ENV_ID = "qfl_gym/ChannelPower-v0"
TINY = {"num_devices": 2, "num_subchannels": 2, "num_power_levels": 2, "sic_residual": 0.1}


def _problem(seed: int, **overrides):
    return gym.make(ENV_ID, **{**TINY, **overrides}).reset(seed=seed)[1]["problem"]


@pytest.mark.parametrize("mode", ["exact", "qubo"])
def test_density_matrix_equals_pennylane_default_mixed(mode):
    p = _problem(4)
    devices = [0, 1] if mode == "exact" else [1]  # 4 qubits: binary / one-hot
    block = Block(p, np.zeros(2, int), np.zeros(2, int), devices)
    cost = build_cost(block, mode)
    noise = (0.04, 0.07)
    fast = make_simulator(cost, "numpy", noise)
    ref = make_simulator(cost, "default.mixed", noise)
    assert isinstance(fast, DensityMatrixQAOA) and fast.num_qubits == 4
    rng = np.random.default_rng(0)
    g, b = rng.normal(size=2), rng.normal(size=2)
    np.testing.assert_allclose(fast.probabilities(g, b), ref.probabilities(g, b), atol=1e-8)
    for objective in (None, cvar_objective(cost.normalized, 0.3)):
        v1, dg1, db1 = fast.value_and_grad(g, b, objective)
        v2, dg2, db2 = ref.value_and_grad(g, b, objective)
        assert v1 == pytest.approx(v2, abs=1e-8)
        np.testing.assert_allclose(dg1, dg2, atol=1e-8)
        np.testing.assert_allclose(db1, db2, atol=1e-8)


@pytest.mark.parametrize("depth", [1, 3])
def test_adjoint_gradients_match_finite_differences(depth):
    rng = np.random.default_rng(depth)
    sim = DensityMatrixQAOA(rng.normal(size=32), depolarizing_p=0.05, amplitude_damping_gamma=0.1)
    g, b = rng.normal(size=depth), rng.normal(size=depth)
    objective = cvar_objective(sim.cost, 0.4)
    _, dg, db = sim.value_and_grad(g, b, objective)
    h = 1e-6

    def value(gammas, betas):
        return objective(sim.probabilities(gammas, betas))[0]

    for i in range(depth):
        e = np.eye(depth)[i] * h
        fd_gamma = (value(g + e, b) - value(g - e, b)) / (2 * h)
        fd_beta = (value(g, b + e) - value(g, b - e)) / (2 * h)
        assert dg[i] == pytest.approx(fd_gamma, abs=1e-5)
        assert db[i] == pytest.approx(fd_beta, abs=1e-5)


def test_channel_limits_are_exact():
    rng = np.random.default_rng(0)
    cost = rng.normal(size=16)
    g, b = rng.normal(size=2), rng.normal(size=2)
    ideal = StateVectorQAOA(cost)
    np.testing.assert_allclose(
        DensityMatrixQAOA(cost).probabilities(g, b), ideal.probabilities(g, b), atol=1e-12
    )
    # p = 3/4 depolarizes completely: the measured distribution is uniform
    full = DensityMatrixQAOA(cost, depolarizing_p=0.75).probabilities(g, b)
    np.testing.assert_allclose(full, np.full(16, 1 / 16), atol=1e-12)
    # gamma = 1 relaxes every qubit to |0>
    relaxed = DensityMatrixQAOA(cost, amplitude_damping_gamma=1.0).probabilities(g, b)
    np.testing.assert_allclose(relaxed, np.eye(16)[0], atol=1e-12)
    # weak noise stays close to the ideal state and moves it toward uniform
    weak = DensityMatrixQAOA(cost, depolarizing_p=0.01).probabilities(g, b)
    d_weak = np.abs(weak - ideal.probabilities(g, b)).sum()
    assert 0 < d_weak < np.abs(full - ideal.probabilities(g, b)).sum()


def test_noise_lowers_the_expected_reward_toward_uniform_and_is_seeded():
    env = gym.make(ENV_ID, **{**TINY, "num_devices": 3})  # 6 qubits, one block
    obs, info = env.reset(seed=2)
    expected = []
    for p in (0.0, 0.05, 0.2, 0.75):
        agent = agents.make("qaoa", env, seed=0, depolarizing_p=p, max_qubits=MAX_NOISY_QUBITS)
        action = agent.act(obs, info)
        stats = agent.last_stats
        expected.append(stats["expected_objective"])
        again = agents.make("qaoa", env, seed=0, depolarizing_p=p, max_qubits=10)
        np.testing.assert_array_equal(again.act(obs, info), action)
    assert expected[0] > expected[1] > expected[2] > expected[3]
    assert expected[3] == pytest.approx(stats["uniform_objective"], rel=1e-9)


def test_noisy_bcd_on_qfl_blocks_runs_within_the_density_limit():
    env = gym.make(ENV_ID, num_devices=4, num_subchannels=2, num_power_levels=2)
    obs, info = env.reset(seed=0)
    agent = agents.make(
        "qaoa", env, seed=1, amplitude_damping_gamma=0.02, max_qubits=4, max_sweeps=1
    )
    action = agent.act(obs, info)
    assert agent.last_stats["mode"] == "bcd" and agent.last_stats["qubits"] <= 4
    assert env.action_space.contains(action)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"depolarizing_p": 1.2}, r"depolarizing_p must be <= 1\.0, got 1\.2"),
        ({"amplitude_damping_gamma": -0.5}, r"amplitude_damping_gamma must be >= 0\.0"),
        ({"depolarizing_p": 0.01}, r"max_qubits must be <= 10 with noise on.*max_qubits=12"),
        (
            {"depolarizing_p": 0.01, "device": "default.qubit", "max_qubits": 8},
            r"device 'default\.qubit' simulates pure states only",
        ),
    ],
)
def test_bad_noise_options_name_the_field_and_the_limit(options, match):
    env = gym.make(ENV_ID, **TINY)
    with pytest.raises(ValueError, match=match):
        agents.make("qaoa", env, **options)


def test_density_simulator_refuses_blocks_beyond_its_limit():
    with pytest.raises(ValueError, match="at most 10 qubits"):
        DensityMatrixQAOA(np.zeros(2**11), depolarizing_p=0.1)
