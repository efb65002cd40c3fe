"""Every env id under gymnasium's AsyncVectorEnv and SB3's SubprocVecEnv (spawn)."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

import qfl_gym

# small, fast settings per id; ids without an entry use their defaults
FAST_KWARGS = {
    "qfl_gym/ChannelPower-v0": {"scenario": "small", "horizon": 4},
    "qfl_gym/QFL-v0": {"scenario": "small", "rounds": 4},
}
STEPS = 6  # crosses an autoreset with horizon 4


def rollout_gym(venv, seed):
    obs, _ = venv.reset(seed=seed)
    venv.action_space.seed(seed)
    out = [obs]
    for _ in range(STEPS):
        obs, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
        out += [obs, reward, terminated, truncated]
    venv.close()
    return out


def rollout_sb3(venv, seed):
    venv.seed(seed)
    out = [venv.reset()]
    rng = np.random.default_rng(seed)
    nvec = venv.action_space.nvec
    for _ in range(STEPS):
        obs, reward, done, infos = venv.step(rng.integers(0, nvec, (venv.num_envs, len(nvec))))
        out += [obs, reward, done]
        out += [i["terminal_observation"] for i in infos if "terminal_observation" in i]
    venv.close()
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        # SubprocVecEnv stacks float64 rewards, DummyVecEnv stores float32
        np.testing.assert_allclose(x, y, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", qfl_gym.ENV_IDS)
def test_async_vector_env_with_spawn_matches_sync(env_id):
    kwargs = FAST_KWARGS.get(env_id, {})
    spawned = gym.make_vec(
        env_id,
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
        **kwargs,
    )
    in_process = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync", **kwargs)
    assert_same(rollout_gym(spawned, 3), rollout_gym(in_process, 3))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", qfl_gym.ENV_IDS)
def test_sb3_subproc_vec_env_with_spawn_matches_dummy(env_id):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    # "module:id" makes the spawned worker import qfl_gym (and register the ids) first
    make = functools.partial(gym.make, f"qfl_gym:{env_id}", **FAST_KWARGS.get(env_id, {}))
    spawned = SubprocVecEnv([make, make], start_method="spawn")
    assert_same(rollout_sb3(spawned, 5), rollout_sb3(DummyVecEnv([make, make]), 5))
