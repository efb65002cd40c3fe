"""Differential privacy of the updates: clipping, noise level, accounting, integration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl
from hypothesis import given, settings
from hypothesis import strategies as st

import qfl_gym  # noqa: F401
from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.privacy import (
    DPUpdates,
    PrivacyAccountant,
    PrivacyConfig,
    clip_updates,
    dp_epsilon,
)

QFL = "qfl_gym/QFL-v0"
TINY = tiny_qfl(rounds=4)


# ------------------------------------------------------------------ config
def test_privacy_is_off_by_default():
    cfg = PrivacyConfig()
    assert not cfg.enabled and cfg.noise_std == 0.0
    from qfl_gym.envs.qfl_scenario import QFL_PRESETS

    assert not QFL_PRESETS["small"].privacy.enabled
    assert QFL_PRESETS["private"].privacy.noise_std == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dp_clip_norm": 1.0, "dp_noise_multiplier": -0.5}, "dp_noise_multiplier must be >= 0"),
        ({"dp_clip_norm": 0.0}, "dp_clip_norm must be > 0"),
        ({"dp_clip_norm": float("inf")}, "dp_clip_norm must be finite"),
        ({"dp_noise_multiplier": 1.0}, "needs dp_clip_norm"),
        ({"dp_delta": 0.0}, r"dp_delta must be > 0"),
        ({"dp_delta": 1.0}, r"dp_delta must be < 1"),
        ({"dp_delta": -1e-5}, r"dp_delta must be > 0"),
        ({"dp_placement": "cloud"}, "dp_placement"),
        ({"dp_accountant": "moments"}, "dp_accountant"),
    ],
)
def test_bad_privacy_settings_name_the_field_and_limit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrivacyConfig(**kwargs)


def test_bad_privacy_settings_are_rejected_by_the_env():
    with pytest.raises(ValueError, match="dp_noise_multiplier must be >= 0"):
        gym.make(QFL, scenario="small", dp_clip_norm=1.0, dp_noise_multiplier=-1.0)
    with pytest.raises(ValueError, match=r"dp_placement='central'.*'krum'"):
        gym.make(QFL, scenario="small", dp_clip_norm=1.0, aggregation="krum")
    # local noise is post-processed by any rule
    gym.make(QFL, scenario="small", dp_clip_norm=1.0, dp_placement="local", aggregation="krum")


# --------------------------------------------------------------- mechanism
@settings(max_examples=50, deadline=None)
@given(
    M=st.integers(1, 6),
    P=st.integers(1, 12),
    clip=st.floats(1e-3, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_clipping_bounds_the_norm_and_keeps_direction(M, P, clip, seed):
    rng = np.random.default_rng(seed)
    deltas = rng.normal(size=(M, P)) * rng.choice([1e-3, 1.0, 100.0], size=(M, 1))
    out = clip_updates(deltas, clip)
    norms = np.linalg.norm(deltas, axis=1)
    new = np.linalg.norm(out, axis=1)
    assert np.all(new <= clip * (1 + 1e-12))
    np.testing.assert_allclose(new, np.minimum(norms, clip), rtol=1e-10)
    small = norms <= clip
    np.testing.assert_array_equal(out[small], deltas[small])  # short updates untouched
    cos = np.einsum("mp,mp->m", out, deltas) / (new * norms)
    np.testing.assert_allclose(cos, 1.0, rtol=1e-10)


@pytest.mark.parametrize(("z", "clip"), [(1.0, 0.5), (0.3, 2.0)])
def test_local_noise_has_the_configured_standard_deviation(z, clip):
    cfg = PrivacyConfig(dp_clip_norm=clip, dp_noise_multiplier=z, dp_placement="local")
    dp = DPUpdates(cfg, num_devices=50)
    dp.reset(np.random.default_rng(0))
    honest = np.ones(50, bool)
    honest[:5] = False  # devices that do not follow the protocol add no noise
    noise = dp.privatize(np.zeros((50, 4000)), honest)
    np.testing.assert_array_equal(noise[:5], 0.0)
    sample = noise[5:].ravel()  # 180 000 draws: std estimate within ~0.2%
    assert sample.std() == pytest.approx(z * clip, rel=0.01)
    assert abs(sample.mean()) < 0.01 * z * clip


def test_central_noise_has_the_configured_standard_deviation_on_the_sum():
    z, clip, K, P = 2.0, 0.25, 10, 50_000
    dp = DPUpdates(PrivacyConfig(dp_clip_norm=clip, dp_noise_multiplier=z), num_devices=K)
    dp.reset(np.random.default_rng(1))
    delivered = np.zeros(K, bool)
    delivered[[1, 4, 7, 8]] = True
    deltas = np.zeros((K, P))
    deltas[:, 0] = 1.0  # clipped to 0.25 per device
    clipped = dp.privatize(deltas, np.ones(K, bool))
    step = dp.noisy_mean(clipped, delivered)
    M = 4
    assert step[1:].std() == pytest.approx(z * clip / M, rel=0.02)  # sigma on the sum, / M
    assert abs(step[0] - clip) < 5 * z * clip / M
    assert not np.any(dp.noisy_mean(clipped, np.zeros(K, bool)))  # nothing released


def test_central_dp_without_noise_is_the_uniform_mean_of_clipped_updates():
    dp = DPUpdates(PrivacyConfig(dp_clip_norm=1.0), num_devices=3)
    dp.reset(np.random.default_rng(0))
    deltas = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, -2.0]])
    clipped = dp.privatize(deltas, np.ones(3, bool))
    np.testing.assert_allclose(clipped, [[0.6, 0.8], [0.3, 0.4], [0.0, -1.0]])
    np.testing.assert_allclose(dp.noisy_mean(clipped, np.array([True, True, False])), [0.45, 0.6])


# -------------------------------------------------------------- accounting
def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    rounds = [1, 2, 5, 10, 30]
    for z in (0.7, 1.0, 2.0, 4.0):
        eps = [dp_epsilon(z, r) for r in rounds]
        assert all(np.diff(eps) > 0), (z, eps)
    for r in (1, 10, 30):
        eps = [dp_epsilon(z, r) for z in (0.7, 1.0, 2.0, 4.0)]
        assert all(np.diff(eps) < 0), (r, eps)
    assert dp_epsilon(1.0, 0) == 0.0
    assert dp_epsilon(0.0, 1) == np.inf


def test_accounting_agrees_with_the_analytic_gaussian_mechanism():
    """R Gaussian rounds with multiplier z compose to one with z / sqrt(R) (exactly, in
    privacy-loss-distribution terms); the PLD accountant reproduces the analytic epsilon
    (Balle and Wang 2018) and RDP is a valid, looser bound."""
    from dp_accounting import get_epsilon_gaussian

    for z, R in ((1.0, 1), (2.0, 10), (4.0, 30)):
        exact = get_epsilon_gaussian(z / np.sqrt(R), 1e-5)
        pld = dp_epsilon(z, R, accountant="pld")
        rdp = dp_epsilon(z, R, accountant="rdp")
        assert pld == pytest.approx(exact, rel=0.01)
        assert rdp >= exact
        assert rdp == pytest.approx(exact, rel=0.25)
    # Poisson subsampling amplifies privacy (when it applies)
    assert dp_epsilon(1.0, 10, sampling_probability=0.1) < dp_epsilon(1.0, 10) / 3


def test_accountant_memoizes_per_count_and_matches_fresh_accounting():
    acc = PrivacyAccountant(1.5, 1e-5)
    eps = acc.epsilons(np.array([3, 0, 7, 3]))
    assert eps[1] == 0.0 and eps[0] == eps[3]
    assert eps[2] == pytest.approx(dp_epsilon(1.5, 7), rel=1e-9)
    assert acc.epsilon(3) == pytest.approx(dp_epsilon(1.5, 3), rel=1e-9)
    # local placement: a device's whole update changes by up to 2C -> multiplier z / 2
    local = PrivacyConfig(dp_clip_norm=1.0, dp_noise_multiplier=3.0, dp_placement="local")
    assert local.accounting_noise_multiplier == 1.5


# ------------------------------------------------------------- integration
def test_qfl_reports_epsilon_per_round_from_the_accountant():
    env = gym.make(QFL, scenario="small", dp_clip_norm=0.5, dp_noise_multiplier=1.5, **TINY)
    u = env.unwrapped
    _, info = env.reset(seed=0)
    assert info["dp_epsilon"] == 0.0
    np.testing.assert_array_equal(info["dp_epsilon_per_device"], 0.0)
    released = np.zeros(4, dtype=int)
    previous = 0.0
    # devices 0 and 1 on their own sub-channels at full power, 2 and 3 starved together
    action = u.encode_action([0, 1, 0, 1], [1, 1, 0, 0])
    for _ in range(4):
        _, _, _, _, info = env.step(action)
        released += info["delivered"]
        np.testing.assert_allclose(
            info["dp_epsilon_per_device"], [dp_epsilon(1.5, int(c)) for c in released]
        )
        assert info["dp_epsilon"] == pytest.approx(max(info["dp_epsilon_per_device"]))
        assert info["dp_epsilon"] >= previous
        previous = info["dp_epsilon"]
    assert previous > 0


def test_local_dp_charges_every_device_every_round():
    env = gym.make(
        QFL,
        scenario="small",
        dp_clip_norm=0.5,
        dp_noise_multiplier=2.0,
        dp_placement="local",
        dp_accountant="pld",
        **TINY,
    )
    env.reset(seed=0)
    for r in range(1, 3):
        _, _, _, _, info = env.step(env.action_space.sample())
        expected = dp_epsilon(1.0, r, accountant="pld")
        np.testing.assert_allclose(info["dp_epsilon_per_device"], expected, rtol=1e-6)


def test_dp_changes_neither_the_channel_nor_delivery_and_noise_hurts_learning():
    """Separate noise stream: same channel and deliveries; heavy noise stalls learning."""
    base = {**TINY, "rounds": 6, "packet_errors": False, "update_bits": 1.0}
    runs = {}
    for name, extra in {
        "clean": {},
        "clip": {"dp_clip_norm": 10.0},
        "noisy": {"dp_clip_norm": 0.5, "dp_noise_multiplier": 20.0},
    }.items():
        env = gym.make(QFL, scenario="small", **base, **extra)
        _, info = env.reset(seed=3)
        gains = [info["problem"].gains]
        action = env.unwrapped.encode_action([0, 1, 0, 1], [1, 1, 1, 1])
        for _ in range(6):
            _, _, _, _, info = env.step(action)
            gains.append(info["problem"].gains)
        runs[name] = (np.array(gains), info)
    for name in ("clip", "noisy"):
        np.testing.assert_array_equal(runs[name][0], runs["clean"][0])
    assert runs["clip"][1]["dp_epsilon"] == np.inf  # clipping without noise: no guarantee
    assert runs["noisy"][1]["dp_epsilon"] < 1.0
    assert runs["noisy"][1]["global_loss"] > runs["clean"][1]["global_loss"] + 0.1


def test_federated_learner_validates_its_security_configs():
    from qfl_gym.learning.federated import FederatedLearner

    cfg = LearningConfig(dataset="iris", classes=None, n_qubits=3, n_layers=1)
    with pytest.raises(ValueError, match="privacy must be a PrivacyConfig"):
        FederatedLearner(cfg, 4, privacy={"dp_clip_norm": 1.0})
    learner = FederatedLearner(cfg, 4)
    assert learner.dp is None and learner.dp_epsilon is None


@pytest.mark.parametrize("preset", ["secrecy", "private", "byzantine"])
def test_security_presets_pass_the_env_checkers_and_copy_exactly(preset):
    import copy
    import pickle

    from gymnasium.utils.env_checker import check_env as gym_check_env

    env = gym.make(QFL, scenario=preset, rounds=6)
    gym_check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=11)
    env.step(env.action_space.sample())
    action = env.action_space.sample()
    clones = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    ref = env.step(action)
    for clone in clones:
        out = clone.step(action)
        np.testing.assert_array_equal(out[0], ref[0])
        assert out[1] == ref[1]
        for key in ("dp_epsilon", "secrecy_rate_bps", "malicious", "global_loss"):
            if key in ref[-1]:
                np.testing.assert_array_equal(out[-1][key], ref[-1][key])
