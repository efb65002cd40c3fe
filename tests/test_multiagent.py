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
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'scenario'.*only accepted"):
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


def random_joint_actions(env, rng):
    """One (sub-channel, power level) per agent, from a seeded generator."""
    N, L = env.action_space(env.possible_agents[0]).nvec
    return {a: np.array([rng.integers(N), rng.integers(L)]) for a in env.agents}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"energy_weight": 2.0, "outage_penalty": 0.5, "min_rate_bps": 2e6}],
    ids=["secrecy", "secrecy-penalized"],
)
def test_individual_rewards_share_the_secrecy_sum_rate_when_it_is_the_reward(kwargs):
    # ChannelPower-v0's secrecy preset rewards the secrecy sum rate: the shares follow it
    solo = DeviceParallelEnv(ENV_ID, scenario="secrecy", reward="individual", **kwargs)
    single = gym.make(ENV_ID, scenario="secrecy", **kwargs)
    assert solo.secrecy_shares
    assert not DeviceParallelEnv(ENV_ID, scenario="default").secrecy_shares
    solo.reset(seed=8)
    single.reset(seed=8)
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(6):
        actions = random_joint_actions(solo, rng)
        joint = np.array([actions[a] for a in solo.possible_agents])
        _, r_solo, *_ = solo.step(actions)
        _, reward, _, _, info = single.step(np.concatenate([joint[:, 0], joint[:, 1]]))
        shares = np.array([r_solo[a] for a in solo.possible_agents])
        assert shares.sum() == pytest.approx(reward, rel=1e-9, abs=1e-12)
        penalty = kwargs.get("energy_weight", 0.0) * info["energy_j"]
        penalty = penalty + kwargs.get("outage_penalty", 0.0) * info["outage"]
        expected = info["secrecy_rate_bps"] * 1e-6 - penalty
        np.testing.assert_allclose(shares, expected, rtol=1e-9, atol=1e-12)
        gaps.append(np.abs(info["rate_bps"] - info["secrecy_rate_bps"]).max())
    assert max(gaps) > 0  # eavesdroppers took rate: shares of r_k would not sum up


def test_qfl_secrecy_sum_rate_reward_gives_secrecy_shares():
    single = gym.make("qfl_gym/QFL-v0", scenario="secrecy", reward="secrecy-sum-rate", rounds=2)
    solo = DeviceParallelEnv(single, reward="individual")
    assert solo.secrecy_shares
    assert not DeviceParallelEnv("qfl_gym/QFL-v0", scenario="secrecy", rounds=2).secrecy_shares
    twin = gym.make("qfl_gym/QFL-v0", scenario="secrecy", reward="secrecy-sum-rate", rounds=2)
    solo.reset(seed=1)
    twin.reset(seed=1)
    actions = random_joint_actions(solo, np.random.default_rng(1))
    _, rewards, *_ = solo.step(actions)
    joint = np.array([actions[a] for a in solo.possible_agents])
    _, reward, _, _, info = twin.step(np.concatenate([joint[:, 0], joint[:, 1]]))
    assert reward == pytest.approx(info["secrecy_sum_rate_bps"] * 1e-6, rel=1e-12)
    shares = np.array([rewards[a] for a in solo.possible_agents])
    np.testing.assert_allclose(shares, info["secrecy_rate_bps"] * 1e-6, rtol=1e-12)
    assert shares.sum() == pytest.approx(info["secrecy_sum_rate_bps"] * 1e-6, rel=1e-9)


def test_render_accepts_the_mode_rllib_passes():
    env = DeviceParallelEnv(ENV_ID, scenario="small", render_mode="ansi")
    env.reset(seed=0)
    assert env.render(None) == env.render("ansi") == env.render()
    with pytest.raises(ValueError, match="render mode 'rgb_array'"):
        env.render("rgb_array")
    assert DeviceParallelEnv(ENV_ID, scenario="small").render(None) is None
    pytest.importorskip("ray.rllib", reason="RLlib is the 'rllib' extra")
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    wrapped = ParallelPettingZooEnv(DeviceParallelEnv(ENV_ID, scenario="small", render_mode="ansi"))
    wrapped.reset(seed=0)
    assert wrapped.render().startswith("t=0/")
