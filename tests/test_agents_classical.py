"""Classical optimizers: exhaustive search, SCA, random sampling, simulated annealing."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agents
import qfl_gym  # noqa: F401
from agents.classical.sca import continuous_objective, interference_matrix, sca_powers
from qfl_gym.wireless import noma

ENV_ID = "qfl_gym/ChannelPower-v0"
PRICED = {"energy_weight": 300.0, "outage_penalty": 0.5, "min_rate_bps": 3e6}


def env_and_info(seed=0, **overrides):
    env = gym.make(ENV_ID, **overrides)
    obs, info = env.reset(seed=seed)
    return env, obs, info


def decision_value(env, info, action):
    return info["problem"].reward(*env.unwrapped.decode_action(action))


# -------------------------------------------------------------- exhaustive
@pytest.mark.parametrize(
    "overrides",
    [
        {"num_devices": 3, "num_subchannels": 2, "num_power_levels": 2},
        {"num_devices": 2, "num_subchannels": 3, "num_power_levels": 3, "sic_residual": 0.2},
        dict(num_devices=3, num_subchannels=2, num_power_levels=3, sic_residual=0.05, **PRICED),
    ],
)
@pytest.mark.parametrize("seed", range(2))
def test_exhaustive_equals_brute_force_enumeration(overrides, seed):
    env, obs, info = env_and_info(seed, **overrides)
    p = info["problem"]
    K, N, L = p.num_devices, p.num_subchannels, p.num_power_levels
    best = max(
        p.reward(np.array(c), np.array(lv))
        for c in itertools.product(range(N), repeat=K)
        for lv in itertools.product(range(L), repeat=K)
    )
    agent = agents.make("exhaustive", env, chunk_size=7)  # many chunks
    action = agent.act(obs, info)
    assert decision_value(env, info, action) == pytest.approx(best, rel=1e-12)
    assert agent.last_stats["objective_evaluations"] == (N * L) ** K


def test_exhaustive_refuses_large_problems_with_a_clear_error():
    env = gym.make(ENV_ID, num_devices=6)  # 16^6 = 1.7e7 assignments
    with pytest.raises(ValueError, match=r"max_assignments=4194304"):
        agents.make("exhaustive", env)
    with pytest.raises(ValueError, match=r"max_assignments=100"):
        agents.make("exhaustive", gym.make(ENV_ID, num_devices=2), max_assignments=100)
    assert agents.make("exhaustive", env, max_assignments=2**25).max_assignments == 2**25


# --------------------------------------------------------------------- SCA
@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    eps=st.sampled_from([0.0, 0.02, 0.1, 0.3]),
    energy_weight=st.sampled_from([0.0, 50.0, 500.0]),
)
def test_sca_objective_never_decreases_and_powers_respect_bounds(seed, eps, energy_weight):
    env, obs, info = env_and_info(
        seed, num_devices=8, sic_residual=eps, energy_weight=energy_weight
    )
    agent = agents.make("sca", env)
    action = agent.act(obs, info)
    stats = agent.last_stats
    trace = np.array(stats["trace"])
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[:-1]).max())
    levels = info["problem"].power_levels_w
    assert np.all(stats["powers_w"] >= levels[0] * (1 - 1e-12))
    assert np.all(stats["powers_w"] <= levels[-1] * (1 + 1e-12))
    env.unwrapped.codec.validate(action)
    assert stats["objective"] == pytest.approx(decision_value(env, info, action))


def test_sca_surrogate_is_a_tight_lower_bound():
    # the derivation: r_k >= B [u_k(p) - v_k(p_t) - grad v_k(p_t) (p - p_t)], equal at p_t
    _, _, info = env_and_info(3, num_devices=6, num_subchannels=2, sic_residual=0.1)
    p = info["problem"]
    rng = np.random.default_rng(0)
    channels = rng.integers(0, 2, 6)
    g = p.gains[np.arange(6), channels]
    noise = p.noise_w[channels]
    lo, hi = p.power_levels_w[0], p.power_levels_w[-1]
    p_t = rng.uniform(lo, hi, 6)
    D = interference_matrix(p_t * g, channels, p.sic_residual)

    def fixed_order_rates(pw):
        interference = D @ (pw * g)
        return np.log2(1 + pw * g / (noise + interference))

    def surrogate(pw):
        u = np.log2(noise + pw * g + D @ (pw * g))
        v_t = np.log2(noise + D @ (p_t * g))
        grad_v = (D * g[None, :]) / ((noise + D @ (p_t * g))[:, None] * np.log(2))
        return u - v_t - grad_v @ (pw - p_t)

    np.testing.assert_allclose(surrogate(p_t), fixed_order_rates(p_t), rtol=1e-12)
    for _ in range(20):
        pw = rng.uniform(lo, hi, 6)
        assert np.all(surrogate(pw) <= fixed_order_rates(pw) + 1e-12)
    # and the fixed-order rates at p_t are the env's rates
    sinr = noma.sic_sinr(p_t * g, channels, p.noise_w, p.sic_residual)
    np.testing.assert_allclose(fixed_order_rates(p_t), np.log2(1 + sinr), rtol=1e-12)


def test_sca_reaches_the_full_power_optimum_under_perfect_sic():
    # with perfect SIC the sum rate of a sub-channel increases in every power, so full
    # power is optimal: SCA stays there, and climbs to (nearly) its value from p_min
    _, _, info = env_and_info(1, num_devices=6, sic_residual=0.0)
    p = info["problem"]
    channels = np.array([0, 0, 1, 1, 2, 3])
    lo, hi = p.power_levels_w[0], p.power_levels_w[-1]
    optimum = continuous_objective(p, channels, np.full(6, hi))
    stay = sca_powers(p, channels, np.full(6, hi))
    np.testing.assert_allclose(stay.powers_w, hi)
    climb = sca_powers(p, channels, np.full(6, lo))
    assert climb.trace[0] < 0.9 * optimum
    assert climb.trace[-1] == pytest.approx(optimum, rel=1e-3)


def test_sca_beats_or_matches_greedy_on_imperfect_sic():
    env, obs, info = env_and_info(0, scenario="imperfect-sic")
    sca = decision_value(env, info, agents.make("sca", env).act(obs, info))
    greedy = decision_value(env, info, agents.make("greedy", env).act(obs, info))
    assert sca >= greedy


# --------------------------------------------------------- random sampling
def test_random_sampling_keeps_the_best_of_its_draws():
    env, obs, info = env_and_info(2, num_devices=5)
    p = info["problem"]
    agent = agents.make("random-sampling", env, seed=11, samples=64)
    action = agent.act(obs, info)
    rng = np.random.default_rng(11)  # the same draws
    c = rng.integers(0, p.num_subchannels, (64, 5))
    lv = rng.integers(0, p.num_power_levels, (64, 5))
    assert decision_value(env, info, action) == pytest.approx(p.reward(c, lv).max())
    assert agent.last_stats["objective_evaluations"] == 64


def test_random_sampling_with_the_whole_space_finds_the_optimum():
    env, obs, info = env_and_info(4, num_devices=2, num_subchannels=2, num_power_levels=2)
    best = decision_value(env, info, agents.make("exhaustive", env).act(obs, info))
    found = decision_value(
        env, info, agents.make("random-sampling", env, seed=0, samples=400).act(obs, info)
    )
    assert found == pytest.approx(best)


# --------------------------------------------------------------- annealing
@pytest.mark.parametrize("seed", range(3))
def test_annealing_is_optimal_when_the_qubo_is_exact(seed):
    # two devices: the pairwise QUBO is exact, so its ground state is the optimum; single-
    # flip annealing reaches it in about 1 read of 10 here (one-hot barriers), so the
    # default 100 reads find it
    env, obs, info = env_and_info(
        seed, num_devices=2, num_subchannels=2, num_power_levels=3, sic_residual=0.1
    )
    best = decision_value(env, info, agents.make("exhaustive", env).act(obs, info))
    agent = agents.make("annealing", env, seed=seed)
    assert decision_value(env, info, agent.act(obs, info)) == pytest.approx(best)
    assert agent.last_stats["mode"] == "single" and agent.last_stats["reads"] == 100


def test_annealing_uses_bcd_on_large_problems_and_improves_on_greedy():
    env, obs, info = env_and_info(0, num_devices=10, sic_residual=0.05)
    agent = agents.make("annealing", env, seed=0, num_reads=16, num_sweeps=50, max_sweeps=1)
    value = decision_value(env, info, agent.act(obs, info))
    greedy = decision_value(env, info, agents.make("greedy", env).act(obs, info))
    assert agent.last_stats["mode"] == "bcd" and agent.last_stats["qubo_variables"] == 48
    assert value >= greedy


def test_classical_options_are_validated():
    env = gym.make(ENV_ID)
    with pytest.raises(ValueError, match="samples"):
        agents.make("random-sampling", env, samples=0)
    with pytest.raises(ValueError, match="num_reads"):
        agents.make("annealing", env, num_reads=0)
    with pytest.raises(ValueError, match="max_variables=8"):
        agents.make("annealing", env, max_variables=8)
    with pytest.raises(ValueError, match="tol"):
        agents.make("sca", env, tol=-1.0)
