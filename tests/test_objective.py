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


# ------------------------------------------------ named objectives (one definition)
def uplink_problem(objective, seed=0, **overrides):
    """An AllocationProblem of a small uplink with ``objective`` and random gains."""
    from qfl_gym.wireless.config import uplink_config
    from qfl_gym.wireless.problem import objective_constants

    cfg = uplink_config("small", sic_residual=0.05, objective=objective, **overrides)
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(4, 2)) * 10 ** rng.uniform(-12, -9, size=(4, 1))
    problem = AllocationProblem.from_config(cfg, gains)
    assert problem.constants.equals(objective_constants(objective, cfg))
    return cfg, problem


def random_assignments(seed=1, M=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, (M, 4)), rng.integers(0, 2, (M, 4))


def test_round_time_is_the_slowest_rate_plus_a_mean_rate_tiebreak():
    cfg, p = uplink_problem("round-time")
    ch, lv = random_assignments()
    r = p.rates(ch, lv)
    expected = r.min(-1) / 1e6 + 1e-3 * r.mean(-1) / 1e6
    np.testing.assert_allclose(p.reward(ch, lv), expected, rtol=1e-12)
    assert p.objective == "round-time"
    # a shorter slowest upload (update_bits / min rate) scores higher unless the slowest
    # rates differ by less than 0.1% of the mean rates' difference (the documented bound)
    round_s = cfg.update_bits / r.min(-1)
    value = np.asarray(p.reward(ch, lv))
    shorter = round_s[:, None] < round_s[None, :]
    near_tie = (r.min(-1)[:, None] - r.min(-1)[None, :]) <= 1e-3 * (
        r.mean(-1)[None, :] - r.mean(-1)[:, None]
    )
    assert np.all((value[:, None] > value[None, :]) | ~shorter | near_tie)
    assert np.any(shorter & ~near_tie)
    assert np.all(np.isfinite(value))


def test_min_rate_is_the_sum_rate_minus_the_shortfall_penalty():
    _, p = uplink_problem("min-rate", min_rate_bps=2e6, min_rate_penalty=7.0)
    ch, lv = random_assignments()
    r = p.rates(ch, lv)
    shortfall = np.maximum(2e6 - r, 0.0)
    expected = r.sum(-1) / 1e6 - 7.0 * shortfall.sum(-1) / 1e6
    np.testing.assert_allclose(p.reward(ch, lv), expected, rtol=1e-12)
    assert np.any(shortfall > 0) and np.any(shortfall == 0)  # both sides of the minimum


def test_channel_power_deliveries_use_the_slot_and_chen_threshold():
    from qfl_gym.wireless.delivery import CHEN_WATERFALL_THRESHOLD_DB

    cfg, p = uplink_problem("deliveries", update_bits=1e4)
    ch, lv = random_assignments()
    r, s = p.rates(ch, lv), p.sinr(ch, lv)
    m = 10 ** (CHEN_WATERFALL_THRESHOLD_DB / 10)
    expected = delivery_probability(r, s, 1e4, cfg.slot_s, m).sum(-1) + 0.01 * r.sum(-1) / 1e6
    np.testing.assert_allclose(p.reward(ch, lv), expected, rtol=1e-12)


def test_prices_apply_to_every_objective():
    for objective in ("deliveries", "round-time", "min-rate"):
        _, plain = uplink_problem(objective)
        _, priced = uplink_problem(objective, energy_weight=100.0, outage_penalty=0.5)
        ch, lv = random_assignments()
        r = plain.rates(ch, lv)
        penalty = 100.0 * plain.energy_j(lv).sum(-1) + 0.5 * (r < plain.min_rate_bps).sum(-1)
        np.testing.assert_allclose(priced.reward(ch, lv), plain.reward(ch, lv) - penalty)


def test_objective_value_takes_leading_axes_and_continuous_powers():
    from agents.classical.sca import continuous_objective
    from qfl_gym.wireless.problem import OBJECTIVES, objective_value

    for objective in OBJECTIVES:
        _, p = uplink_problem(objective)
        ch, lv = random_assignments(M=12)
        value = continuous_objective(p, ch, p.power_levels_w[lv])  # SCA's path, W
        np.testing.assert_allclose(value, p.reward(ch, lv), rtol=1e-12)
        r, s = p.rates(ch, lv), p.sinr(ch, lv)
        pw = p.power_levels_w[lv]
        grid = objective_value(
            r.reshape(3, 4, 4), s.reshape(3, 4, 4), pw.reshape(3, 4, 4), p.constants
        )
        np.testing.assert_allclose(grid.reshape(-1), p.reward(ch, lv), rtol=1e-12)
        # strictly between two levels too
        mid = np.sqrt(p.power_levels_w[0] * p.power_levels_w[1])
        assert np.all(np.isfinite(continuous_objective(p, ch, np.full((12, 4), mid))))


@pytest.mark.parametrize("objective", ["deliveries", "round-time", "min-rate"])
def test_smooth_relaxation_tends_to_the_objective_and_has_the_right_gradient(objective):
    from agents.classical.sca import continuous_rates
    from qfl_gym.wireless.problem import objective_value, smooth_objective

    _, p = uplink_problem(
        objective, update_bits=1e4, outage_penalty=0.3, min_rate_bps=1e6, energy_weight=50.0
    )
    rng = np.random.default_rng(5)
    ch = rng.integers(0, 2, (40, 4))
    pw = rng.uniform(p.power_levels_w[0], p.power_levels_w[-1], (40, 4))
    r, s = continuous_rates(p, ch, pw)
    exact = objective_value(r, s, pw, p.constants)
    # away from the steps (rates not within 5% of a threshold), softness -> 0 is exact
    thresholds = np.array([1e6, 1e4 / p.slot_s])
    far = np.all(np.abs(r[..., None] / thresholds - 1) > 0.05, axis=(1, 2))
    assert far.sum() >= 10
    value, d_rate, d_power = smooth_objective(
        r, pw, p.constants, softness=1e-4, slowest_scale_bps=1e6
    )
    np.testing.assert_allclose(value[far], exact[far], rtol=1e-3, atol=1e-6)
    # gradient by central differences, at a generous softness
    value, d_rate, d_power = smooth_objective(
        r, pw, p.constants, softness=0.3, slowest_scale_bps=1e6
    )
    np.testing.assert_allclose(d_power, -50.0 * p.slot_s)  # the energy price, per W
    h = 1e-3 * r.mean()
    for k in range(4):
        e = np.zeros(4)
        e[k] = h
        up = smooth_objective(r + e, pw, p.constants, softness=0.3, slowest_scale_bps=1e6)[0]
        down = smooth_objective(r - e, pw, p.constants, softness=0.3, slowest_scale_bps=1e6)[0]
        np.testing.assert_allclose(d_rate[:, k], (up - down) / (2 * h), rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("objective", ["round-time", "min-rate"])
def test_block_reward_table_is_exact_for_the_new_objectives(objective):
    _, p = uplink_problem(objective, seed=3, min_rate_bps=1e6)
    block = Block(p, np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]), [0, 2, 3], "joint")
    tuples = np.arange(block.num_tuples)
    expected = np.asarray(p.reward(*block.assignments(block.tuple_options(tuples))))
    np.testing.assert_allclose(block.reward_table(), expected, rtol=1e-10, atol=1e-12)


def test_the_qubo_of_min_rate_is_exact_for_two_devices_and_round_time_has_a_surrogate():
    from agents.qaoa.qubo import build_cost

    _, p = uplink_problem("min-rate", seed=4, min_rate_bps=1e6)
    block = Block(p, np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]), [1, 2], "joint")
    model = block.pairwise_model()
    options = block.tuple_options(np.arange(block.num_tuples))
    np.testing.assert_allclose(model.value(options), block.rewards(options), rtol=1e-10)
    _, q = uplink_problem("round-time", seed=4)
    block = Block(q, np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]), [1, 2], "joint")
    assert block.surrogate_threshold_bps == pytest.approx(
        q.rates([0, 1, 0, 1], [1, 1, 0, 1]).mean()
    )
    cost = build_cost(block, "qubo")
    assert cost.qubo is not None and np.all(np.isfinite(cost.energies))


def test_channel_power_objective_option_sets_reward_and_problem():
    from qfl_gym.wireless.problem import OBJECTIVES

    for objective in OBJECTIVES:
        env = gym.make("qfl_gym/ChannelPower-v0", scenario="small", objective=objective)
        _, info = env.reset(seed=2)
        problem = info["problem"]
        assert problem.objective == objective
        action = env.action_space.sample()
        _, reward, *_ = env.step(action)
        K = problem.num_devices
        assert reward == pytest.approx(problem.reward(action[:K], action[K:]), rel=1e-12)
    with pytest.raises(ValueError, match="unknown objective 'fastest'"):
        gym.make("qfl_gym/ChannelPower-v0", objective="fastest")
    with pytest.raises(ValueError, match="min_rate_penalty"):
        gym.make("qfl_gym/ChannelPower-v0", min_rate_penalty=-1.0)
    with pytest.raises(ValueError, match=r"secrecy_reward=True .* objective='sum-rate'"):
        gym.make("qfl_gym/ChannelPower-v0", scenario="secrecy", objective="deliveries")


def test_qfl_objective_override_stays_a_round_setting():
    from qfl_gym.envs.qfl_scenario import qfl_scenario

    sc = qfl_scenario("small", objective="round-time", min_rate_penalty=3.0)
    assert sc.objective == "round-time" and sc.uplink.objective == "round-time"
    assert sc.uplink.min_rate_penalty == 3.0
    assert qfl_scenario("small").uplink.objective == "sum-rate"
