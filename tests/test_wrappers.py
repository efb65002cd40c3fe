"""Action wrappers: flat Discrete joint action, continuous Box action, action masks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import qfl_gym
from qfl_gym.wrappers import ActionMaskWrapper, ContinuousAction, DiscreteJointAction

ENV_ID = "qfl_gym/ChannelPower-v0"


@pytest.fixture
def one_torch_thread():
    """SB3 smoke trainings: tiny networks, so one torch thread (no oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kwargs):
    return gym.make(ENV_ID, scenario="small", **kwargs)


# ------------------------------------------------------------ Discrete joint
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_discrete_joint_action_space_and_checkers():
    env = DiscreteJointAction(small())
    assert env.action_space == gym.spaces.Discrete(256)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(DiscreteJointAction(small()), warn=True)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 255))
def test_discrete_index_roundtrips_and_steps_like_the_multidiscrete_action(index):
    env = DiscreteJointAction(small())
    channels, levels = env.decode(index)
    assert env.encode(channels, levels) == index
    # device 0 is the least significant digit of base N*L = 4
    digit0 = index % 4
    assert (channels[0], levels[0]) == (digit0 // 2, digit0 % 2)
    ref = small()
    env.reset(seed=index)
    ref.reset(seed=index)
    _, r1, *_ = env.step(index)
    _, r2, *_ = ref.step(np.concatenate([channels, levels]))
    assert r1 == r2


def test_discrete_joint_action_rejects_large_scenarios_and_bad_indices():
    with pytest.raises(ValueError, match="1099511627776 joint actions"):
        DiscreteJointAction(gym.make(ENV_ID))
    env = DiscreteJointAction(small())
    env.reset(seed=0)
    for bad in (256, -1, 1.5, [1, 2]):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)


@pytest.mark.slow
def test_dqn_trains_on_the_discrete_joint_action(one_torch_thread):
    from stable_baselines3 import DQN

    env = DiscreteJointAction(small(horizon=20))
    model = DQN("MlpPolicy", env, learning_starts=100, buffer_size=2000, seed=0)
    model.learn(600)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(int(action))


# ------------------------------------------------------------ continuous
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_continuous_action_maps_scores_and_power_fractions():
    env = ContinuousAction(gym.make(ENV_ID, num_devices=2, num_subchannels=3, num_power_levels=5))
    assert env.action_space.shape == (2 * 4,)
    assert env.action_space.dtype == np.float32
    # device 0: best score on sub-channel 2, fraction 0 -> level 0;
    # device 1: tie between 0 and 1 -> 0, fraction (0.5+1)/2 = 0.75 -> 0.75*4 = 3
    a = np.array([0.1, -0.3, 0.9, 0.5, 0.5, -1.0, -1.0, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(env.action(a), [2, 0, 0, 3])
    np.testing.assert_array_equal(env.action(np.ones(8, np.float32)), [0, 0, 4, 4])
    for bad in (np.full(8, 1.01), np.full(8, np.nan), np.zeros(7)):
        with pytest.raises(ValueError, match=r"outside \[-1, 1\]|shape"):
            env.action(bad)
    gym_check_env(ContinuousAction(small()), skip_render_check=True)
    sb3_check_env(ContinuousAction(small()), warn=True)


@pytest.mark.slow
def test_sac_trains_on_the_continuous_action(one_torch_thread):
    from stable_baselines3 import SAC

    env = ContinuousAction(small(horizon=20))
    model = SAC("MlpPolicy", env, learning_starts=50, buffer_size=1000, batch_size=64, seed=0)
    model.learn(150)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


# ------------------------------------------------------------ action masks
def test_action_mask_layout_and_enforcement():
    channel_mask = np.array([True, True, False, True])
    level_mask = np.ones((10, 4), dtype=bool)
    level_mask[3, 3] = False  # device 3 may not use its top level
    env = ActionMaskWrapper(gym.make(ENV_ID), channel_mask=channel_mask, level_mask=level_mask)
    _, info = env.reset(seed=0)
    mask = info["action_mask"]
    assert mask.shape == (10 * 4 + 10 * 4,) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, env.action_masks())
    np.testing.assert_array_equal(mask[:40].reshape(10, 4), np.tile(channel_mask, (10, 1)))
    np.testing.assert_array_equal(mask[40:].reshape(10, 4), level_mask)
    sample_mask = env.sample_mask()
    assert len(sample_mask) == 20 and sample_mask[0].dtype == np.int8
    for _ in range(20):
        action = env.action_space.sample(mask=sample_mask)
        assert not np.any(action[:10] == 2) and action[10 + 3] != 3
        _, _, _, _, info = env.step(action)
        assert "action_mask" in info
    action = np.zeros(20, dtype=np.int64)
    action[4] = 2
    with pytest.raises(ValueError, match="device 4 may not use sub-channel 2"):
        env.step(action)
    action[4], action[13] = 0, 3
    with pytest.raises(ValueError, match="device 3 may not use power level 3"):
        env.step(action)


def test_action_mask_arguments_are_validated():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        ActionMaskWrapper(gym.make(ENV_ID), channel_mask=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        ActionMaskWrapper(gym.make(ENV_ID), channel_mask=np.ones(4))
    with pytest.raises(ValueError, match="leaves device 0 no allowed sub-channel"):
        ActionMaskWrapper(gym.make(ENV_ID), channel_mask=np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="min_snr_db"):
        ActionMaskWrapper(gym.make(ENV_ID), min_snr_db=float("nan"))
    with pytest.raises(ValueError, match="qfl_gym environment"):
        ActionMaskWrapper(gym.make("CartPole-v1"))


def test_dynamic_masks_from_snr_and_from_a_function():
    env = ActionMaskWrapper(gym.make(ENV_ID), min_snr_db=25.0)
    _, info = env.reset(seed=4)
    problem = info["problem"]
    cfg = env.unwrapped.config
    snr_db = 10 * np.log10(problem.gains * cfg.power_levels_w[-1] / cfg.noise_w)
    expected = snr_db >= 25.0
    expected[np.arange(10), np.argmax(snr_db, axis=1)] = True  # best one always kept
    np.testing.assert_array_equal(env.channel_mask, expected)
    assert 0 < expected.sum() < 40

    def only_strongest_two(problem):
        order = np.argsort(-problem.gains, axis=1)
        mask = np.zeros(problem.gains.shape, dtype=bool)
        np.put_along_axis(mask, order[:, :2], True, axis=1)
        return mask, None

    env = ActionMaskWrapper(gym.make(ENV_ID), mask_fn=only_strongest_two)
    _, info = env.reset(seed=4)
    assert env.channel_mask.sum(axis=1).tolist() == [2] * 10
    assert env.channel_mask[np.arange(10), np.argmax(info["problem"].gains, axis=1)].all()
    env.step(env.action_space.sample(mask=env.sample_mask()))
    env = ActionMaskWrapper(gym.make(ENV_ID), mask_fn=lambda p: (np.zeros((10, 4), bool), None))
    with pytest.raises(ValueError, match="no allowed sub-channel"):
        env.reset(seed=0)


def test_masks_compose_with_the_discrete_and_continuous_wrappers():
    closed = np.array([True, False])
    masked = ActionMaskWrapper(small(), channel_mask=closed, level_mask=np.array([False, True]))
    env = DiscreteJointAction(masked)
    _, info = env.reset(seed=0)
    joint = info["action_mask"]
    assert joint.shape == (256,) and joint.sum() == 1  # one channel, one level each
    allowed = int(np.flatnonzero(joint)[0])
    channels, levels = env.decode(allowed)
    assert (channels == 0).all() and (levels == 1).all()
    _, _, _, _, info = env.step(allowed)
    np.testing.assert_array_equal(info["action_mask"], joint)
    with pytest.raises(ValueError, match="may not use"):
        env.step(int(np.flatnonzero(~joint)[0]))

    cont = ContinuousAction(ActionMaskWrapper(gym.make(ENV_ID), channel_mask=closed.repeat(2)))
    cont.reset(seed=0)
    for _ in range(30):
        action = cont.action_space.sample()
        assert set(cont.action(action)[:10].tolist()) <= {0, 1}
        cont.step(action)


def test_masks_are_batched_by_gymnasium_vector_envs():
    def make():
        return ActionMaskWrapper(small(), channel_mask=np.array([False, True]))

    venv = gym.vector.SyncVectorEnv([make, make])
    _, info = venv.reset(seed=0)
    assert info["action_mask"].shape == (2, 4 * 2 + 4 * 2)
    assert not info["action_mask"][:, [0, 2, 4, 6]].any()


@pytest.mark.slow
def test_maskable_ppo_never_takes_a_masked_action(one_torch_thread):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = ActionMaskWrapper(small(horizon=16), channel_mask=np.array([True, False]))
    model = sb3_contrib.MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0)
    model.learn(128)  # the wrapper raises on any masked action taken while training
    obs, _ = env.reset(seed=1)
    for _ in range(16):
        action, _ = model.predict(obs, action_masks=get_action_masks(env))
        assert (action[:4] == 0).all()
        obs, *_ = env.step(action)


@pytest.mark.parametrize("env_id", qfl_gym.ENV_IDS)
def test_continuous_and_masked_wrappers_work_for_every_id(env_id):
    kwargs = {"qfl_gym/QFL-v0": {"scenario": "small", "rounds": 4}}.get(
        env_id, {"scenario": "small"}
    )
    env = ContinuousAction(ActionMaskWrapper(gym.make(env_id, **kwargs), min_snr_db=0.0))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert np.isfinite(reward) and info["action_mask"].dtype == np.bool_
