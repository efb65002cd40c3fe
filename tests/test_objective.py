"""QFL-v0's allocation objective: sum rate (reference) or expected timely deliveries."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym  # noqa: F401
from agents.qaoa.block import Block
from qfl_gym.wireless.delivery import delivery_probability
from qfl_gym.wireless.problem import AllocationProblem


def deliveries_problem(seed=0, K=6, N=2, L=3, eps=0.05):
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(K, N)) * 10 ** rng.uniform(-12, -9, size=(K, 1))
    return AllocationProblem(
        gains,
        np.full(N, 1e-13),
        [0.01, 0.05, 0.2],
        1e6,
        sic_residual=eps,
        rate_weight=0.01,
        delivery_weight=1.0,
        update_bits=1e5,
        deadline_s=0.2,
        waterfall_m=1.005,
    )


def test_deliveries_objective_is_expected_deliveries_plus_rate_tiebreak():
    p = deliveries_problem()
    rng = np.random.default_rng(1)
    ch = rng.integers(0, 2, (50, 6))
    lv = rng.integers(0, 3, (50, 6))
    rates, sinr = p.rates(ch, lv), p.sinr(ch, lv)
    expected = (
        delivery_probability(rates, sinr, 1e5, 0.2, 1.005).sum(-1) + 0.01 * rates.sum(-1) / 1e6
    )
    np.testing.assert_allclose(p.reward(ch, lv), expected, rtol=1e-12)
    assert p.reward(ch[0], lv[0]) == pytest.approx(expected[0])
    # a device below update_bits / deadline = 0.5 Mbit/s never counts as delivered
    on_time = rates >= 0.5e6
    assert np.all(delivery_probability(rates, sinr, 1e5, 0.2, 1.005)[~on_time] == 0)


def test_qaoa_block_decomposition_matches_the_deliveries_objective():
    p = deliveries_problem(seed=3)
    channels = np.zeros(6, dtype=np.int64)
    levels = np.full(6, 2)
    block = Block(p, channels, levels, [0, 2, 5], "joint")
    tuples = np.arange(block.num_tuples)
    expected = np.asarray(p.reward(*block.assignments(block.tuple_options(tuples))))
    np.testing.assert_allclose(block.reward_table(), expected, rtol=1e-10, atol=1e-12)


def test_qfl_env_problem_uses_the_scenario_objective():
    env = gym.make("qfl_gym/QFL-v0", scenario="small", objective="deliveries")
    _, info = env.reset(seed=0)
    problem = info["problem"]
    sc = env.unwrapped.scenario
    ch = np.zeros(sc.num_devices, dtype=np.int64)
    lv = np.full(sc.num_devices, sc.uplink.num_power_levels - 1)
    r, s = problem.rates(ch, lv), problem.sinr(ch, lv)
    expected = (
        delivery_probability(
            r, s, sc.uplink.update_bits, sc.deadline_s, sc.waterfall_threshold
        ).sum()
        + 0.01 * r.sum() / 1e6
    )
    assert problem.reward(ch, lv) == pytest.approx(expected)
    default = gym.make("qfl_gym/QFL-v0", scenario="small")
    _, info = default.reset(seed=0)
    assert info["problem"].reward(ch, lv) == pytest.approx(info["problem"].sum_rate(ch, lv) / 1e6)
    with pytest.raises(ValueError, match="unknown objective 'fairness'"):
        gym.make("qfl_gym/QFL-v0", objective="fairness")


def test_optimizing_deliveries_delivers_more_updates_than_optimizing_sum_rate():
    delivered = {}
    for objective in ("sum-rate", "deliveries"):
        env = gym.make("qfl_gym/QFL-v0", scenario="case-study", objective=objective, rounds=4)
        agent = agents.make("local-search", env, seed=0)
        total = 0
        for seed in (0, 1):
            obs, info = env.reset(seed=seed)
            for _ in range(4):
                obs, _, _, _, info = env.step(agent.act(obs, info))
                total += int(info["delivered"].sum())
        delivered[objective] = total
    # measured: about 4 vs 7.5 updates per round out of 50
    assert delivered["deliveries"] > 1.4 * delivered["sum-rate"], delivered
