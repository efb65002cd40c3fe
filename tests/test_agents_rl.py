"""``sb3``: saved stable-baselines3 policies behind the agent interface."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym  # noqa: F401
from agents.rl import detect_algorithm

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    from stable_baselines3 import A2C, DQN, PPO

    path = tmp_path_factory.mktemp("sb3")
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small", horizon=16)
    ppo = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    ppo.learn(total_timesteps=128)
    ppo.save(path / "ppo.zip")
    A2C("MlpPolicy", env, n_steps=8, seed=0, device="cpu").learn(32).save(path / "a2c")
    DQN("MlpPolicy", "CartPole-v1", learning_starts=0, device="cpu").save(path / "dqn.zip")
    (path / "corrupt.zip").write_bytes(b"not a zip file at all")
    return path, ppo


def test_sb3_agent_acts_deterministically_like_the_saved_policy(saved_models):
    path, ppo = saved_models
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small", horizon=16)
    agent = agents.make("sb3", env, seed=0, path=path / "ppo.zip")
    assert agent.algo == "PPO"
    obs, info = env.reset(seed=1)
    for _ in range(4):
        action = agent.act(obs, info)
        env.unwrapped.codec.validate(action)
        np.testing.assert_array_equal(action, ppo.predict(obs, deterministic=True)[0])
        np.testing.assert_array_equal(action, agent.act(obs, info))
        obs, _, _, _, info = env.step(action)
    assert agent.last_stats["algorithm"] == "PPO"


def test_sb3_algorithm_is_detected_from_the_zip(saved_models):
    path, _ = saved_models
    assert detect_algorithm(path / "ppo.zip") == "PPO"
    assert detect_algorithm(path / "a2c.zip") == "A2C"
    assert detect_algorithm(path / "dqn.zip") == "DQN"
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    agent = agents.make("sb3", env, path=path / "a2c")  # ".zip" may be omitted, as in SB3
    assert agent.algo == "A2C"


def test_sb3_errors_are_clear(saved_models):
    path, _ = saved_models
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    with pytest.raises(FileNotFoundError, match="no model file"):
        agents.make("sb3", env, path=path / "missing.zip")
    with pytest.raises(ValueError, match="not a stable-baselines3 model zip"):
        agents.make("sb3", env, path=path / "corrupt.zip")
    with pytest.raises(ValueError, match="needs path"):
        agents.make("sb3", env)
    with pytest.raises(ValueError, match="algo"):
        agents.make("sb3", env, path=path / "ppo.zip", algo="SAC")
    bigger = gym.make("qfl_gym/ChannelPower-v0", scenario="small", num_devices=5)
    with pytest.raises(ValueError, match="observation space"):
        agents.make("sb3", bigger, path=path / "ppo.zip")
    with pytest.raises(ValueError, match="observation space"):  # a CartPole DQN
        agents.make("sb3", env, path=path / "dqn.zip")


def test_device_policy_agent_refuses_a_zip_without_a_device_policy(saved_models):
    path, _ = saved_models
    assert "device-policy" in agents.available()
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    with pytest.raises(ValueError, match="does not hold a DevicePolicy"):
        agents.make("device-policy", env, path=path / "ppo.zip")  # an MlpPolicy zip
    with pytest.raises(ValueError, match="not a stable-baselines3 model zip"):
        agents.make("device-policy", env, path=path / "corrupt.zip")
