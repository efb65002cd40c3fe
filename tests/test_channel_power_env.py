"""ChannelPower-v0: API conformance, action contract, determinism, robustness."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import qfl_gym
from qfl_gym.envs.channel_power import ChannelPowerEnv
from qfl_gym.wireless.config import UPLINK_PRESETS
from qfl_gym.wireless.problem import AllocationProblem

ENV_ID = "qfl_gym/ChannelPower-v0"
STEP_KEYS = {"problem", "rate_bps", "sinr_db", "sum_rate_bps", "energy_j", "outage"}


def rollout(env, seed, steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        action = rng.integers(0, env.action_space.nvec)
        out.append(env.step(action))
    return out


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_registered_on_import():
    assert ENV_ID in qfl_gym.ENV_IDS
    assert ENV_ID in gym.envs.registration.registry


@pytest.mark.parametrize("scenario", sorted(UPLINK_PRESETS))
def test_gymnasium_and_sb3_checkers_pass(scenario):
    env = gym.make(ENV_ID, scenario=scenario)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, scenario=scenario).unwrapped, warn=True)


def test_spaces_follow_the_documented_layout():
    env = gym.make(ENV_ID, num_devices=6, num_subchannels=3, num_power_levels=5)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert env.action_space.shape == (12,)
    np.testing.assert_array_equal(env.action_space.nvec, [3] * 6 + [5] * 6)
    assert env.observation_space.shape == (6 * 3 + 6 + 1,)
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0 and np.all(obs[18:24] == 0.0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs[-1] == pytest.approx(1 / env.unwrapped.config.horizon)
    assert np.all(obs[18:24] > 0)


def test_observation_gain_features_are_normalized_snr_db():
    env = ChannelPowerEnv()
    obs, info = env.reset(seed=3)
    cfg = env.config
    snr_db = 10 * np.log10(info["problem"].gains * cfg.power_levels_w[-1] / cfg.noise_w)
    np.testing.assert_allclose(obs[:40], ((snr_db - 20) / 20).ravel(), rtol=1e-5, atol=1e-5)
    assert -3 < obs[:40].mean() < 3  # roughly unit scale


def test_info_holds_problem_and_step_outcome():
    env = gym.make(ENV_ID)
    _, info = env.reset(seed=0)
    assert set(info) == {"problem"}
    problem = info["problem"]
    assert isinstance(problem, AllocationProblem)
    cfg = env.unwrapped.config
    assert problem.gains.shape == (10, 4)
    assert problem.noise_w.shape == (4,)
    assert problem.power_levels_w.shape == (4,)
    assert problem.bandwidth_hz == cfg.bandwidth_hz
    assert problem.sic_residual == cfg.sic_residual
    action = env.action_space.sample()
    ch, lv = env.unwrapped.decode_action(action)
    expected_reward = problem.reward(ch, lv)
    expected_rates = problem.rates(ch, lv)
    _, reward, terminated, truncated, info = env.step(action)
    assert set(info) >= STEP_KEYS
    assert reward == pytest.approx(expected_reward, rel=1e-9)
    np.testing.assert_allclose(info["rate_bps"], expected_rates, rtol=1e-12)
    assert info["sum_rate_bps"] == pytest.approx(expected_rates.sum())
    assert info["sum_rate_bps"] == pytest.approx(problem.sum_rate(ch, lv), rel=1e-9)
    np.testing.assert_allclose(
        info["sinr_db"], 10 * np.log10(problem.sinr(ch, lv)), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(info["energy_j"], cfg.power_levels_w[lv] * cfg.slot_s)
    np.testing.assert_array_equal(info["outage"], expected_rates < cfg.min_rate_bps)
    assert info["problem"] is not problem  # the next decision's instance
    assert not terminated and not truncated


def test_problem_is_immutable():
    _, info = gym.make(ENV_ID).reset(seed=0)
    problem = info["problem"]
    with pytest.raises(AttributeError):
        problem.bandwidth_hz = 1.0
    with pytest.raises(ValueError):
        problem.gains[0, 0] = 1.0


def test_reward_prices_energy_and_outage_when_configured():
    env = ChannelPowerEnv(energy_weight=100.0, outage_penalty=2.0, min_rate_bps=5e6)
    _, info = env.reset(seed=1)
    action = env.encode_action(np.zeros(10, int), np.full(10, 3))
    _, reward, *_, step_info = env.step(action)
    expected = (
        step_info["sum_rate_bps"] / 1e6
        - 100.0 * step_info["energy_j"].sum()
        - 2.0 * step_info["outage"].sum()
    )
    assert reward == pytest.approx(expected)
    assert step_info["outage"].sum() > 0
    assert reward == pytest.approx(info["problem"].reward(*env.decode_action(action)))


@pytest.mark.parametrize("env_id", [ENV_ID, "qfl_gym/QFL-v0"])
def test_problem_before_reset_is_a_clear_error(env_id):
    env = gym.make(env_id).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        _ = env.problem
    _, info = env.reset(seed=0)
    assert env.problem is info["problem"]


def test_encode_decode_round_trip():
    env = ChannelPowerEnv(num_devices=5, num_subchannels=3, num_power_levels=2)
    ch = np.array([0, 2, 1, 1, 0])
    lv = np.array([1, 0, 0, 1, 1])
    action = env.encode_action(ch, lv)
    np.testing.assert_array_equal(action, [0, 2, 1, 1, 0, 1, 0, 0, 1, 1])
    c2, l2 = env.decode_action(action)
    np.testing.assert_array_equal(c2, ch)
    np.testing.assert_array_equal(l2, lv)
    assert env.action_space.contains(action)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(7, dtype=np.int64), r"action must have shape \(8,\)"),
        (np.zeros((2, 8), dtype=np.int64), r"action must have shape \(8,\)"),
        (np.array([0, 0, 0, 3, 0, 0, 0, 0]), r"action\[3\] = 3 is out of range: device 3's sub"),
        (np.array([0, 0, 0, 0, 0, 0, 2, 0]), r"action\[6\] = 2 .* device 2's power level"),
        (np.array([0, 0, 0, 0, -1, 0, 0, 0]), r"action\[4\] = -1 is out of range"),
        (np.array([0, 0.5, 0, 0, 0, 0, 0, 0]), r"action\[1\] = 0.5 is not an integer"),
        (np.array([0, 0, 0, 0, 0, 0, 0, np.nan]), "is not an integer"),
        (np.zeros(8, dtype=bool), "action must hold integers"),
        ("abc", "action must have shape"),
    ],
)
def test_bad_actions_raise_value_error_naming_the_entry(action, message):
    env = gym.make(ENV_ID, num_devices=4, num_subchannels=3, num_power_levels=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_integral_floats_and_lists_are_accepted():
    env = ChannelPowerEnv(num_devices=2, num_subchannels=2, num_power_levels=2)
    env.reset(seed=0)
    _, r1, *_ = env.step([1, 0, 1, 1])
    env.reset(seed=0)
    _, r2, *_ = env.step(np.array([1.0, 0.0, 1.0, 1.0]))
    assert r1 == r2


def test_same_seed_same_trajectory_different_seed_differs():
    for scenario in ("default", "dense-mobile"):
        a = rollout(gym.make(ENV_ID, scenario=scenario), seed=42, steps=150)
        b = rollout(gym.make(ENV_ID, scenario=scenario), seed=42, steps=150)
        c = rollout(gym.make(ENV_ID, scenario=scenario), seed=43, steps=150)
        assert_same(a, b)
        assert not np.array_equal(a[0][0], c[0][0])


def test_reset_without_seed_continues_the_stream():
    env = gym.make(ENV_ID)
    o1, _ = env.reset(seed=0)
    o2, _ = env.reset()
    assert not np.array_equal(o1, o2)


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))])
def test_deepcopy_and_pickle_continue_identically(clone):
    env = gym.make(ENV_ID, scenario="dense-mobile")
    env.reset(seed=9)
    for _ in range(70):  # cross a noise-block boundary
        env.step(env.action_space.sample())
    twin = clone(env)
    rng = np.random.default_rng(0)
    for _ in range(80):
        action = rng.integers(0, env.action_space.nvec)
        assert_same(env.step(action), twin.step(action))


def test_truncates_at_horizon_never_terminates():
    env = gym.make(ENV_ID, horizon=5)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


@pytest.mark.parametrize(
    "overrides",
    [
        {"cell_radius_m": 1e6, "min_distance_m": 1e5},
        {"num_devices": 1},
        {"num_devices": 64, "num_subchannels": 1},
        {"num_devices": 64, "num_subchannels": 8, "sic_residual": 1.0},
        {"cell_radius_m": 2.0, "min_distance_m": 1.0, "pathloss_model": "free-space"},
        {"speed_mps": 0.0, "shadowing_std_db": 0.0, "fading": "rician", "rician_k_db": 50.0},
    ],
)
def test_extreme_configs_stay_finite(overrides):
    env = gym.make(ENV_ID, horizon=80, **overrides)
    K = env.unwrapped.config.num_devices
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        assert np.all(np.isfinite(obs)) and env.observation_space.contains(obs)
        for t in range(80):
            if t % 2:
                action = env.action_space.sample()
            else:  # everyone on sub-channel 0 at the same level
                action = env.unwrapped.encode_action(np.zeros(K, int), np.zeros(K, int))
            obs, reward, _, _, info = env.step(action)
            assert np.isfinite(reward)
            assert env.observation_space.contains(obs)
            for key in ("rate_bps", "sinr_db", "energy_j"):
                assert np.all(np.isfinite(info[key])), key
            assert np.all(info["rate_bps"] >= 0)


def test_equal_received_powers_are_finite_and_ordered():
    # identical gains for all devices: exact ties in received power
    env = ChannelPowerEnv(num_devices=4, num_subchannels=1, speed_mps=0.0)
    env.reset(seed=0)
    gains = np.full((4, 1), 1e-10)
    problem = AllocationProblem.from_config(env.config, gains)
    rates = problem.rates(np.zeros(4, int), np.full(4, 3))
    assert np.all(np.isfinite(rates))
    assert np.all(np.diff(rates) > 0)  # later-decoded devices see less interference


def test_render_ansi_lists_the_assignment():
    env = gym.make(ENV_ID, render_mode="ansi", num_devices=3, num_subchannels=2)
    env.reset(seed=0)
    assert "no action" in env.render()
    env.step(env.unwrapped.encode_action([1, 0, 1], [3, 0, 1]))
    text = env.render()
    assert "sub-channel 0: 1@0.0dBm" in text
    assert "sub-channel 1: 0@23.0dBm 2@7.7dBm" in text


def test_render_rgb_array_marks_the_chosen_subchannels():
    env = gym.make(ENV_ID, render_mode="rgb_array", num_devices=3, num_subchannels=2)
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (36, 24, 3) and img.dtype == np.uint8
    env.step(env.unwrapped.encode_action([1, 0, 1], [3, 0, 1]))
    img = env.render()
    red = (img[..., 0] > 100) & (img[..., 1] == 0)
    assert red[6, 18] and red[18, 6] and red[30, 18]  # device rows 0, 1, 2
    assert not red[6, 6]


def test_bad_render_mode_and_scenario():
    with pytest.raises(ValueError, match="unknown render_mode 'human'"):
        ChannelPowerEnv(render_mode="human")
    with pytest.raises(ValueError, match="unknown scenario 'nope'; valid: 'default'"):
        gym.make(ENV_ID, scenario="nope")
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'devices'; valid:"):
        gym.make(ENV_ID, devices=3)


def test_import_does_not_pull_heavy_dependencies():
    import subprocess
    import sys

    code = (
        "import sys, qfl_gym, agents, gymnasium as gym;"
        "e = gym.make('qfl_gym/ChannelPower-v0'); e.reset(seed=0);"
        "agents.make('greedy', e);"
        "print(sorted(m for m in ('torch', 'pennylane', 'ray', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
