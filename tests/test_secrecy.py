"""Passive eavesdroppers: configuration, decoding models, secrecy rates, env integration."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl
from hypothesis import given, settings
from hypothesis import strategies as st

import qfl_gym  # noqa: F401
from qfl_gym.envs.channel_power import ChannelPowerEnv
from qfl_gym.wireless import noma
from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig
from qfl_gym.wireless.secrecy import (
    EavesdropperChannel,
    eavesdropper_noise_w,
    eavesdropper_sinr,
    secrecy_rates_bps,
)

CP = "qfl_gym/ChannelPower-v0"
SECRECY_KEYS = ("eavesdropper_rate_bps", "secrecy_rate_bps", "secrecy_sum_rate_bps")


def reference_eve_sinr(gains, channels, power_w, noise_w, decoding, eps):
    """One eavesdropper, one device at a time (slow, obviously right)."""
    E, K, _ = gains.shape
    out = np.zeros((E, K))
    for e in range(E):
        s = np.array([power_w[k] * gains[e, k, channels[k]] for k in range(K)])
        for k in range(K):
            interference = 0.0
            for j in range(K):
                if j == k or channels[j] != channels[k]:
                    continue
                if decoding == "interference":
                    interference += s[j]
                elif decoding == "sic":
                    after = s[j] < s[k] or (s[j] == s[k] and j > k)
                    interference += s[j] if after else eps * s[j]
            out[e, k] = s[k] / (interference + noise_w)
    return out


# ------------------------------------------------------------------ config
def test_no_eavesdroppers_by_default_and_in_every_old_preset():
    assert UplinkConfig().num_eavesdroppers == 0
    assert UplinkConfig().eavesdropper_positions_m is None
    for name, cfg in UPLINK_PRESETS.items():
        if name != "secrecy":
            assert cfg.num_eavesdroppers == 0 and not cfg.secrecy_reward, name


def test_fixed_positions_set_the_count_and_a_count_clears_them():
    cfg = UplinkConfig(eavesdropper_positions_m=[(10, 20), (-5.5, 0)])
    assert cfg.num_eavesdroppers == 2
    assert cfg.eavesdropper_positions_m == ((10.0, 20.0), (-5.5, 0.0))
    dropped = cfg.replace(num_eavesdroppers=3)
    assert dropped.num_eavesdroppers == 3 and dropped.eavesdropper_positions_m is None
    assert cfg.replace(num_eavesdroppers=0).num_eavesdroppers == 0
    preset = UPLINK_PRESETS["secrecy"]
    assert preset.secrecy_reward and preset.num_eavesdroppers == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_eavesdroppers": -1}, "num_eavesdroppers must be >= 0"),
        ({"num_eavesdroppers": 65}, "num_eavesdroppers must be <= 64"),
        ({"eavesdropper_positions_m": [(1.0, 2.0, 3.0)]}, r"eavesdropper_positions_m\[0\]"),
        ({"eavesdropper_positions_m": [(1.0, float("nan"))]}, r"positions_m\[0\]\[1\]"),
        ({"eavesdropper_positions_m": []}, "1..64 positions"),
        ({"eavesdropper_positions_m": "far"}, "eavesdropper_positions_m"),
        ({"eavesdropper_decoding": "psychic"}, "eavesdropper_decoding"),
        ({"eavesdropper_noise_figure_db": -1.0}, "eavesdropper_noise_figure_db"),
        ({"secrecy_reward": True}, "secrecy_reward=True needs eavesdroppers"),
        ({"secrecy_reward": 1}, "secrecy_reward must be True or False"),
    ],
)
def test_bad_eavesdropper_settings_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UplinkConfig(**kwargs)


# ----------------------------------------------------------------- physics
@settings(max_examples=40, deadline=None)
@given(
    E=st.integers(1, 3),
    K=st.integers(1, 7),
    N=st.integers(1, 3),
    eps=st.sampled_from([0.0, 0.1, 1.0]),
    decoding=st.sampled_from(["sic", "interference", "genie"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_eavesdropper_sinr_matches_the_textbook_definition(E, K, N, eps, decoding, seed):
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(E, K, N)) * 1e-9
    channels = rng.integers(0, N, K)
    power = rng.choice([0.01, 0.1, 0.2], K)
    got = eavesdropper_sinr(gains, channels, power, 1e-12, decoding, eps)
    want = reference_eve_sinr(gains, channels, power, 1e-12, decoding, eps)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # a batch of assignments gives the same rows
    batch = eavesdropper_sinr(
        gains, np.stack([channels, channels]), np.stack([power, power]), 1e-12, decoding, eps
    )
    assert batch.shape == (2, E, K)
    np.testing.assert_allclose(batch[1], got, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(K=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_stronger_eavesdroppers_leave_less_secrecy(K, seed):
    """genie >= sic >= interference at the eavesdropper, so secrecy goes the other way."""
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(2, K, 2)) * 1e-10
    channels = rng.integers(0, 2, K)
    power = np.full(K, 0.2)
    rate = rng.uniform(0, 1e7, K)
    secrecy = {}
    for mode in ("genie", "sic", "interference"):
        sinr = eavesdropper_sinr(gains, channels, power, 1e-13, mode, 0.05)
        secrecy[mode] = secrecy_rates_bps(rate, noma.rates_bps(sinr, 1e6))
        assert np.all(np.isfinite(secrecy[mode])) and np.all(secrecy[mode] >= 0)
        assert np.all(secrecy[mode] <= rate)
    assert np.all(secrecy["genie"] <= secrecy["sic"] + 1e-6)
    assert np.all(secrecy["sic"] <= secrecy["interference"] + 1e-6)


def test_secrecy_rate_is_the_positive_part_against_the_strongest_eavesdropper():
    rate = np.array([5.0, 3.0, 1.0])
    eve = np.array([[1.0, 4.0, 0.0], [2.0, 0.5, 0.0]])
    np.testing.assert_array_equal(secrecy_rates_bps(rate, eve), [3.0, 0.0, 1.0])


def test_eavesdropper_channel_fading_has_unit_mean_and_is_independent_of_the_bs_links():
    cfg = UplinkConfig(
        num_devices=4,
        num_subchannels=3,
        eavesdropper_positions_m=((100.0, 0.0),),
        slot_s=1.0,  # rho = 0: independent slots
        shadowing_std_db=0.0,
    )
    env = ChannelPowerEnv(cfg)
    _, info = env.reset(seed=0)
    eve = env.eavesdroppers
    beta = 10 ** (-eve.pathloss_db / 10)[..., None]
    fading, legit = [], []
    action = env.action_space.sample()
    for _ in range(2000):
        _, _, _, _, info = env.step(action)
        fading.append(info["eavesdropper_gains"] / beta)
        legit.append(info["problem"].gains)
    fading = np.array(fading)
    assert fading.mean() == pytest.approx(1.0, abs=0.05)  # Rayleigh |h|^2 ~ Exp(1)
    assert fading.var() == pytest.approx(1.0, abs=0.15)
    corr = np.corrcoef(fading[:, 0, :, :].ravel(), np.array(legit).ravel())[0, 1]
    assert abs(corr) < 0.05


def test_eavesdropper_geometry_path_loss_and_clamp():
    cfg = UplinkConfig(num_devices=3, eavesdropper_positions_m=((0.0, 0.0), (300.0, 400.0)))
    eve = EavesdropperChannel(cfg)
    devices = np.array([[0.0, 10.0], [300.0, 0.0], [600.0, 800.0]])
    eve.reset(np.random.default_rng(0), devices)
    np.testing.assert_allclose(eve.distance_m[0], [35.0, 300.0, 1000.0])  # clamped at 35 m
    np.testing.assert_allclose(eve.distance_m[1], [np.hypot(300, 390), 400.0, 500.0])
    np.testing.assert_allclose(eve.pathloss_db[0, 2], 128.1)  # 1 km: the intercept
    assert eve.noise_w == pytest.approx(eavesdropper_noise_w(cfg))
    assert eve.noise_w == pytest.approx(cfg.noise_w * 10**0.4)  # NF 9 dB vs 5 dB
    with pytest.raises(ValueError, match="needs eavesdroppers"):
        EavesdropperChannel(UplinkConfig())


# --------------------------------------------------------- ChannelPower-v0
def test_without_eavesdroppers_info_has_no_secrecy_keys():
    env = gym.make(CP)
    _, info = env.reset(seed=0)
    assert env.unwrapped.eavesdroppers is None and "eavesdropper_gains" not in info
    _, _, _, _, info = env.step(env.action_space.sample())
    assert not set(SECRECY_KEYS) & set(info)


def test_eavesdroppers_leave_the_legitimate_channel_and_reward_unchanged():
    plain = gym.make(CP, scenario="default")
    eaves = gym.make(CP, scenario="default", num_eavesdroppers=2)
    _, a = plain.reset(seed=7)
    _, b = eaves.reset(seed=7)
    assert b["eavesdropper_gains"].shape == (2, 10, 4)
    plain.action_space.seed(1)
    for _ in range(70):  # past one fading block of 64 slots
        action = plain.action_space.sample()
        o1, r1, _, _, a = plain.step(action)
        o2, r2, _, _, b = eaves.step(action)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2  # secrecy_reward is off: the sum rate
        np.testing.assert_array_equal(a["problem"].gains, b["problem"].gains)
        sec = b["secrecy_rate_bps"]
        assert np.all(np.isfinite(sec)) and np.all(sec >= 0) and np.all(sec <= b["rate_bps"])
        assert b["secrecy_sum_rate_bps"] == pytest.approx(sec.sum())


def test_secrecy_preset_rewards_the_secrecy_sum_rate():
    env = gym.make(CP, scenario="secrecy")
    env.reset(seed=3)
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(info["secrecy_sum_rate_bps"] * 1e-6)
        assert reward <= info["sum_rate_bps"] * 1e-6
    priced = gym.make(CP, scenario="secrecy", energy_weight=100.0, outage_penalty=1.0)
    priced.reset(seed=3)
    _, reward, _, _, info = priced.step(priced.action_space.sample())
    expected = (
        info["secrecy_sum_rate_bps"] * 1e-6
        - 100.0 * info["energy_j"].sum()
        - 1.0 * info["outage"].sum()
    )
    assert reward == pytest.approx(expected)


def test_eavesdropper_draws_do_not_depend_on_actions_and_are_seeded():
    def trajectory(env_seed, action_seed):
        env = gym.make(CP, scenario="secrecy")
        _, info = env.reset(seed=env_seed)
        env.action_space.seed(action_seed)
        out = [info["eavesdropper_gains"]]
        for _ in range(5):
            out.append(env.step(env.action_space.sample())[-1]["eavesdropper_gains"])
        return np.array(out)

    np.testing.assert_array_equal(trajectory(0, 1), trajectory(0, 2))
    assert not np.array_equal(trajectory(0, 1), trajectory(1, 1))


def test_random_eavesdropper_positions_are_redrawn_in_the_cell_every_reset():
    env = ChannelPowerEnv(num_eavesdroppers=3)
    env.reset(seed=0)
    first = env.eavesdroppers.positions_m.copy()
    env.reset()
    second = env.eavesdroppers.positions_m
    assert not np.array_equal(first, second)
    r = np.hypot(*np.concatenate([first, second]).T)
    assert np.all((r >= env.config.min_distance_m) & (r <= env.config.cell_radius_m))


def test_far_eavesdroppers_leak_nothing_and_near_ones_more():
    def mean_secrecy_fraction(position):
        env = ChannelPowerEnv(eavesdropper_positions_m=(position,), eavesdropper_decoding="genie")
        env.reset(seed=0)
        env.action_space.seed(0)
        sec, rate = 0.0, 0.0
        for _ in range(200):
            info = env.step(env.action_space.sample())[-1]
            sec += info["secrecy_sum_rate_bps"]
            rate += info["sum_rate_bps"]
        return sec / rate

    assert mean_secrecy_fraction((9e4, 0.0)) == pytest.approx(1.0, abs=1e-6)
    assert mean_secrecy_fraction((50.0, 0.0)) < 0.9 * mean_secrecy_fraction((2000.0, 0.0))


def test_eavesdroppers_with_mobility_follow_the_devices():
    env = ChannelPowerEnv(num_devices=3, mobility=True, speed_mps=30.0, num_eavesdroppers=1)
    env.reset(seed=0)
    d0 = env.eavesdroppers.distance_m.copy()
    for _ in range(20):
        info = env.step(env.action_space.sample())[-1]
    assert not np.allclose(d0, env.eavesdroppers.distance_m)
    assert np.all(np.isfinite(info["secrecy_rate_bps"]))


def test_env_with_eavesdroppers_pickles_and_copies():
    env = ChannelPowerEnv(scenario="secrecy")
    env.reset(seed=5)
    env.step(env.action_space.sample())
    action = env.action_space.sample()
    clones = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    ref = env.step(action)[-1]
    for clone in clones:
        info = clone.step(action)[-1]
        np.testing.assert_array_equal(info["secrecy_rate_bps"], ref["secrecy_rate_bps"])
        np.testing.assert_array_equal(info["eavesdropper_gains"], ref["eavesdropper_gains"])


# ------------------------------------------------------------------ QFL-v0
QFL = "qfl_gym/QFL-v0"
TINY_QFL = tiny_qfl(rounds=3)


def test_qfl_secure_upload_sends_updates_at_the_secrecy_rate():
    env = gym.make(QFL, scenario="small", num_eavesdroppers=2, secure_upload=True, **TINY_QFL)
    plain = gym.make(QFL, scenario="small", num_eavesdroppers=2, **TINY_QFL)
    u = env.unwrapped
    _, info = env.reset(seed=1)
    _, ref = plain.reset(seed=1)
    np.testing.assert_array_equal(info["problem"].gains, ref["problem"].gains)
    np.testing.assert_array_equal(info["eavesdropper_gains"], ref["eavesdropper_gains"])
    action = u.encode_action([0, 1, 0, 1], [1, 1, 1, 1])
    for _ in range(3):
        _, _, _, _, info = env.step(action)
        _, _, _, _, ref = plain.step(action)
        bits = u.config.update_bits
        sec = info["secrecy_rate_bps"]
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(info["latency_s"], np.where(sec > 0, bits / sec, np.inf))
        np.testing.assert_allclose(ref["latency_s"], bits / ref["rate_bps"])
        # a delivered update was sent securely within the deadline
        assert np.all(sec[info["delivered"]] * u.scenario.deadline_s >= bits)
        assert info["num_delivered"] <= ref["num_delivered"]


def test_qfl_secrecy_sum_rate_reward_and_preset():
    env = gym.make(
        QFL, scenario="small", num_eavesdroppers=1, reward="secrecy-sum-rate", **TINY_QFL
    )
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(info["secrecy_sum_rate_bps"] * 1e-6)
    preset = gym.make(QFL, scenario="secrecy", rounds=2)
    _, info = preset.reset(seed=0)
    assert preset.unwrapped.scenario.secure_upload
    assert info["eavesdropper_gains"].shape == (2, 8, 4)
    _, _, _, _, info = preset.step(preset.action_space.sample())
    assert set(SECRECY_KEYS) <= set(info)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"secure_upload": True}, "secure_upload needs eavesdroppers"),
        ({"reward": "secrecy-sum-rate"}, "secrecy-sum-rate.*needs eavesdroppers"),
        ({"num_eavesdroppers": 1, "secrecy_reward": True}, "secrecy_reward is ChannelPower"),
        ({"secure_upload": "yes", "num_eavesdroppers": 1}, "secure_upload must be True or False"),
    ],
)
def test_qfl_secrecy_settings_are_validated(overrides, match):
    from qfl_gym.envs.qfl_scenario import qfl_scenario

    with pytest.raises(ValueError, match=match):
        qfl_scenario("small", **overrides)


def test_native_vector_env_models_eavesdroppers_like_single_envs():
    kwargs = {"scenario": "secrecy", "mobility": True, "speed_mps": 3.0, "horizon": 6}
    venv = gym.make_vec(CP, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.make_vec(CP, num_envs=3, vectorization_mode="sync", **kwargs)
    _, vinfo = venv.reset(seed=4)
    _, sinfo = sync.reset(seed=4)
    np.testing.assert_allclose(vinfo["eavesdropper_gains"], sinfo["eavesdropper_gains"])
    rng = np.random.default_rng(1)
    for _ in range(9):  # through a truncation and the next-step autoreset
        actions = rng.integers(
            0, venv.single_action_space.nvec, size=(3, venv.single_action_space.shape[0])
        )
        _, vrew, _, vtrunc, vinfo = venv.step(actions)
        _, srew, _, strunc, sinfo = sync.step(actions)
        np.testing.assert_allclose(vrew, srew, rtol=1e-10)
        np.testing.assert_array_equal(vtrunc, strunc)
        for key in ("secrecy_rate_bps", "eavesdropper_rate_bps", "eavesdropper_gains"):
            if key in sinfo:
                np.testing.assert_allclose(vinfo[key], sinfo[key], rtol=1e-10, err_msg=key)
                np.testing.assert_array_equal(vinfo[f"_{key}"], sinfo[f"_{key}"])
    _, reward, _, _, info = sync.step(sync.action_space.sample())
    np.testing.assert_allclose(reward, info["secrecy_sum_rate_bps"] * 1e-6)
