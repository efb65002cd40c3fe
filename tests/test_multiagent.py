"""PettingZoo view: every device an agent; API and seed tests, local observations, rewards."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="PettingZoo is the 'multiagent' extra")
from pettingzoo.test import parallel_api_test, parallel_seed_test

import qfl_gym
from qfl_gym.envs.observation import rate_features, snr_features
from qfl_gym.multiagent import DeviceParallelEnv, agent_name

ENV_ID = "qfl_gym/ChannelPower-v0"
# small, fast settings per id; ids without an entry use their defaults
FAST_KWARGS = {
    ENV_ID: {"scenario": "small", "horizon": 12},
    "qfl_gym/QFL-v0": {"scenario": "small", "rounds": 4},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_id", "reward"),
    [(env_id, "team") for env_id in qfl_gym.ENV_IDS] + [(ENV_ID, "individual")],
)
def test_pettingzoo_api_and_seed_tests_pass(env_id, reward):
    kwargs = FAST_KWARGS.get(env_id, {})
    parallel_api_test(DeviceParallelEnv(env_id, reward=reward, **kwargs), num_cycles=40)
    parallel_seed_test(lambda: DeviceParallelEnv(env_id, reward=reward, **kwargs), num_cycles=40)


def test_agents_spaces_and_episode_end():
    env = DeviceParallelEnv(ENV_ID, num_devices=3, num_subchannels=2, num_power_levels=5, horizon=4)
    assert (
        env.possible_agents
        == ["device_0", "device_1", "device_2"]
        == [agent_name(k) for k in range(3)]
    )
    space = env.action_space("device_1")
    assert isinstance(space, gym.spaces.MultiDiscrete)
    np.testing.assert_array_equal(space.nvec, [2, 5])
    assert env.observation_space("device_2").shape == (2 + 3,)
    assert env.agents == []
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.possible_agents)
    for t in range(4):
        obs, rew, term, trunc, infos = env.step({a: np.array([0, 1]) for a in env.agents})
        assert set(rew) == set(env.possible_agents)
        assert all(v == (t == 3) for v in trunc.values()) and not any(term.values())
    assert env.agents == []
    with pytest.raises(ValueError, match="episode has ended"):
        env.step({})


def test_observations_are_local_and_follow_the_definition():
    env = DeviceParallelEnv(ENV_ID)
    obs, _ = env.reset(seed=3)
    problem = env.problem
    cfg = env.env.unwrapped.config
    scale = cfg.power_levels_w[-1] / cfg.noise_w
    for k in range(cfg.num_devices):
        o = obs[agent_name(k)]
        assert o.dtype == np.float32 and env.observation_space(agent_name(k)).contains(o)
        np.testing.assert_allclose(o[:4], snr_features(problem.gains[k], scale), rtol=1e-6)
        assert list(o[4:]) == [0.0, 0.0, 0.0]
    # the gain features are the single env's observation rows
    state = env.state()
    np.testing.assert_allclose(
        np.stack([obs[a][:4] for a in env.agents]).ravel(), state[:40], rtol=1e-6
    )
    actions = {a: env.action_space(a).sample() for a in env.agents}
    obs, _, _, _, infos = env.step(actions)
    channels = np.array([actions[a][0] for a in env.possible_agents])
    levels = np.array([actions[a][1] for a in env.possible_agents])
    rates = problem.rates(channels, levels)
    for k in range(cfg.num_devices):
        o, info = obs[agent_name(k)], infos[agent_name(k)]
        assert info["rate_bps"] == pytest.approx(rates[k], rel=1e-9)
        assert o[4] == pytest.approx(rate_features(rates[k], cfg.bandwidth_hz), rel=1e-6)
        assert o[5] == float(rates[k] >= cfg.min_rate_bps) == float(info["delivered"])
        assert o[6] == 0.0  # ChannelPower-v0 broadcasts no global loss


@pytest.mark.parametrize("scenario", ["default", "dense-mobile"])
def test_team_reward_is_the_env_reward_and_individual_rewards_sum_to_it(scenario):
    team = DeviceParallelEnv(ENV_ID, scenario=scenario)
    solo = DeviceParallelEnv(ENV_ID, scenario=scenario, reward="individual")
    single = gym.make(ENV_ID, scenario=scenario)
    for env in (team, solo):
        env.reset(seed=5)
    single.reset(seed=5)
    for _ in range(5):
        actions = {a: team.action_space(a).sample() for a in team.agents}
        joint = np.array([actions[a] for a in team.possible_agents])
        _, r_team, *_ = team.step(actions)
        _, r_solo, *_ = solo.step(actions)
        _, reward, *_ = single.step(np.concatenate([joint[:, 0], joint[:, 1]]))
        assert set(r_team.values()) == {reward}
        assert sum(r_solo.values()) == pytest.approx(reward, rel=1e-9)
        assert len(set(r_solo.values())) > 1


def test_bad_actions_and_arguments_raise():
    env = DeviceParallelEnv(ENV_ID, scenario="small")
    env.reset(seed=0)
    full = {a: np.array([0, 0]) for a in env.agents}
    with pytest.raises(ValueError, match="missing"):
        env.step({"device_0": np.array([0, 0])})
    with pytest.raises(ValueError, match="shape"):
        env.step({**full, "device_1": np.array([0, 0, 0])})
    with pytest.raises(ValueError, match="device 2's sub-channel"):
        env.step({**full, "device_2": np.array([2, 0])})
    with pytest.raises(ValueError, match="unknown reward"):
        DeviceParallelEnv(ENV_ID, reward="selfish")
    with pytest.raises(ValueError, match="only accepted with an env id"):
        DeviceParallelEnv(gym.make(ENV_ID), scenario="small")
    with pytest.raises(ValueError, match="qfl_gym environment"):
        DeviceParallelEnv(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="call reset"):
        DeviceParallelEnv(ENV_ID).state()


def test_wraps_an_instance_renders_and_copies():
    env = DeviceParallelEnv(gym.make(ENV_ID, scenario="small", render_mode="ansi"))
    env.reset(seed=2)
    assert env.render().startswith("t=0/")
    twin = copy.deepcopy(env)
    actions = {a: env.action_space(a).sample() for a in env.agents}
    a, b = env.step(actions), twin.step(actions)
    for x, y in zip(a[0].values(), b[0].values(), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]
    assert "sub-channel 0" in env.render()
