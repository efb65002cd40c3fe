"""The named observation layout every env, wrapper and policy reads observations through."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_qfl

import qfl_gym  # noqa: F401
from qfl_gym.envs.allocation_env import AllocationEnv
from qfl_gym.envs.observation import (
    channel_power_layout,
    layout_from_spec,
    qfl_layout,
    rate_features,
)
from qfl_gym.wireless.config import uplink_config


def test_channel_power_observation_is_read_through_its_layout():
    env = gym.make("qfl_gym/ChannelPower-v0", num_devices=5, num_subchannels=3)
    layout = env.unwrapped.observation_layout
    assert layout == channel_power_layout(5, 3)
    assert env.observation_space == layout.space()
    obs, _ = env.reset(seed=0)
    parts = layout.split(obs)
    np.testing.assert_array_equal(parts["snr"], env.unwrapped.channel.features.astype(np.float32))
    assert (parts["rate"] == 0).all() and parts["time"][0] == 0
    obs, _, _, _, info = env.step(env.action_space.sample())
    parts = layout.split(obs)
    np.testing.assert_allclose(
        parts["rate"], rate_features(info["rate_bps"], env.unwrapped.config.bandwidth_hz), rtol=1e-6
    )
    assert parts["time"][0] == pytest.approx(1 / env.unwrapped.config.horizon)


def test_qfl_layout_segments_match_the_env_state():
    env = gym.make("qfl_gym/QFL-v0", **tiny_qfl())
    layout = env.unwrapped.observation_layout
    obs, info = env.reset(seed=1)
    parts = layout.split(obs)
    scale = 1.0 / np.log(env.unwrapped.learning_config.num_classes)
    assert parts["global_loss"][0] == pytest.approx(info["global_loss"] * scale, rel=1e-6)
    np.testing.assert_allclose(parts["local_loss"], info["local_loss"] * scale, rtol=1e-6)
    assert layout.device_feature_dim == 2 + 1 + 1 + 1  # N SNRs, rate, local loss, staleness
    assert layout.global_feature_dim == 2  # global loss, time


def test_vector_envs_share_the_single_layout():
    for env_id, kwargs in (
        ("qfl_gym/ChannelPower-v0", {}),
        ("qfl_gym/QFL-v0", tiny_qfl(participation="full")),
    ):
        single = gym.make(env_id, **kwargs).unwrapped.observation_layout
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
        assert venv.observation_layout == single
        obs, _ = venv.reset(seed=0)
        assert single.split(obs)["snr"].shape == (2, *single.segment("snr").shape)


def test_device_features_permute_with_the_devices():
    layout = qfl_layout(4, 3, wall_time=True)
    obs = np.random.default_rng(0).random((2, layout.size)).astype(np.float32)
    perm = np.array([2, 0, 3, 1])
    parts = layout.split(obs)
    permuted = np.concatenate(
        [
            (parts[s.name][:, perm] if s.per_device else parts[s.name]).reshape(2, -1)
            for s in layout.segments
        ],
        axis=1,
    )
    np.testing.assert_array_equal(
        layout.device_features(permuted), layout.device_features(obs)[:, perm]
    )
    np.testing.assert_array_equal(layout.global_features(permuted), layout.global_features(obs))
    as_torch = layout.device_features(torch.from_numpy(obs))
    np.testing.assert_array_equal(as_torch.numpy(), layout.device_features(obs))


def test_spec_round_trips_and_bad_input_is_named():
    layout = qfl_layout(6, 2, wall_time=True)
    assert layout_from_spec(layout.spec) == layout
    assert pickle.loads(pickle.dumps(layout)) == layout
    with pytest.raises(ValueError, match="layout spec"):
        layout_from_spec("mystery:K=2,N=2")
    with pytest.raises(ValueError, match="malformed"):
        layout_from_spec("qfl:K=two,N=2")
    with pytest.raises(ValueError, match="has 13"):
        channel_power_layout(3, 3).split(np.zeros(12))
    with pytest.raises(KeyError, match="no observation segment 'loss'"):
        channel_power_layout(3, 3).slice("loss")


def test_an_env_missing_a_hook_says_which():
    class Incomplete(AllocationEnv):
        metadata = {"render_modes": []}  # noqa: RUF012

        def _build(self) -> None:
            pass

    with pytest.raises(NotImplementedError, match="Incomplete must implement _make_layout"):
        Incomplete(uplink_config("small"))
