"""QFL-v0's participation models: deadline (default) and full participation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl

import qfl_gym  # noqa: F401
from qfl_gym.wireless.delivery import draw_attempts


def make(**changes):
    return gym.make("qfl_gym/QFL-v0", **tiny_qfl(**changes))


def test_draw_attempts_is_geometric_with_mean_one_over_success():
    rng = np.random.default_rng(0)
    q = np.array([0.0, 0.3, 0.8, 1.0])
    draws = np.stack([draw_attempts(rng, q) for _ in range(20000)])
    assert (draws[:, 0] == 1).all()
    assert np.isinf(draws[:, 3]).all()
    for j in (1, 2):
        mean, std = draws[:, j].mean(), draws[:, j].std() / np.sqrt(len(draws))
        assert abs(mean - 1.0 / (1.0 - q[j])) < 5 * std
        assert draws[:, j].min() == 1 and (draws[:, j] == np.round(draws[:, j])).all()
        # P(N > 1) = q
        assert abs((draws[:, j] > 1).mean() - q[j]) < 0.02


def test_deadline_rounds_last_the_round_period():
    env = make(slot_s=0.5, deadline_s=0.1)
    _, info = env.reset(seed=3)
    assert info["wall_time_s"] == 0.0
    for t in range(1, 4):
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["round_time_s"] == 0.5
        assert info["wall_time_s"] == pytest.approx(0.5 * t)
    assert env.unwrapped.observation_layout.size == 4 * 2 + 3 * 4 + 2  # no wall_time


def test_full_participation_aggregates_every_timely_upload_and_times_the_round():
    env = make(participation="full", max_round_s=3.0, local_compute_s=0.25, packet_errors=False)
    obs, _ = env.reset(seed=5)
    layout = env.unwrapped.observation_layout
    assert layout.size == obs.shape[0] == 4 * 2 + 3 * 4 + 3
    wall = 0.0
    for _ in range(4):
        obs, _, _, _, info = env.step(env.action_space.sample())
        rate = info["rate_bps"]
        expected = np.where(
            rate > 0, env.unwrapped.config.update_bits / np.maximum(rate, 1e-300), np.inf
        )
        np.testing.assert_allclose(info["latency_s"], expected, rtol=1e-12)
        np.testing.assert_array_equal(info["delivered"], info["latency_s"] <= 3.0)
        slowest = min(info["latency_s"].max(), 3.0)
        assert info["round_time_s"] == pytest.approx(0.25 + slowest)
        wall += info["round_time_s"]
        assert info["wall_time_s"] == pytest.approx(wall)
        feature = layout.split(obs)["wall_time"][0]
        assert feature == pytest.approx(min(wall / (30 * 3.25), 1.0), rel=1e-6)


def test_full_participation_retransmits_after_packet_errors():
    env = make(participation="full", max_round_s=1e6, num_subchannels=1)
    env.reset(seed=2)
    longer = 0
    for _ in range(6):
        _, _, _, _, info = env.step(env.action_space.sample())
        one_shot = env.unwrapped.config.update_bits / info["rate_bps"]
        ratio = info["latency_s"] / one_shot
        finite = np.isfinite(ratio)
        np.testing.assert_allclose(ratio[finite], np.round(ratio[finite]), rtol=1e-9)
        assert (ratio[finite] >= 1 - 1e-9).all()
        longer += int((ratio[finite] > 1.5).sum())
    assert longer > 0  # at 1 sub-channel some SINRs are low enough to need retries


def test_loss_rate_reward_is_loss_decrease_per_second():
    env = make(participation="full", reward="loss-rate", max_round_s=2.0)
    _, info = env.reset(seed=1)
    loss = info["global_loss"]
    for _ in range(3):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx((loss - info["global_loss"]) / info["round_time_s"])
        loss = info["global_loss"]


def test_vector_env_full_participation_matches_single_envs():
    kwargs = tiny_qfl(participation="full", max_round_s=2.0, rounds=3)
    venv = gym.make_vec(
        "qfl_gym/QFL-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs
    )
    singles = [gym.make("qfl_gym/QFL-v0", **kwargs) for _ in range(2)]
    vobs, _ = venv.reset(seed=[11, 12])
    for i, env in enumerate(singles):
        obs, _ = env.reset(seed=11 + i)
        np.testing.assert_array_equal(vobs[i], obs)
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = rng.integers(0, venv.single_action_space.nvec, size=(2, 8))
        vobs, vrew, _, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(singles):
            obs, rew, _, trunc, info = env.step(actions[i])
            np.testing.assert_allclose(vobs[i], obs, rtol=1e-5)
            assert vrew[i] == pytest.approx(rew, rel=1e-5)
            assert vtrunc[i] == trunc
            np.testing.assert_array_equal(vinfo["delivered"][i], info["delivered"])
            assert vinfo["round_time_s"][i] == pytest.approx(info["round_time_s"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("participation", "partial", "participation"),
        ("max_round_s", 0.0, "max_round_s"),
        ("local_compute_s", -1.0, "local_compute_s"),
    ],
)
def test_bad_participation_settings_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        make(**{field: value})
