"""TorchRL and Tianshou build, check and step both env ids (optional extra ``interop``).

Skipped when the extra is not installed (``pip install -e ".[interop]"``); ``make test``
installs it. Scenarios are tiny so every test takes seconds.
"""

from __future__ import annotations

import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl

import qfl_gym  # noqa: F401

CP = "qfl_gym/ChannelPower-v0"
QFL = "qfl_gym/QFL-v0"
CP_KW = {"scenario": "small", "horizon": 3}
QFL_KW = {"scenario": "small", "rounds": 2, **tiny_qfl(num_devices=2)}
CASES = [(CP, CP_KW), (QFL, QFL_KW)]
IDS = ["ChannelPower-v0", "QFL-v0"]


@pytest.fixture(scope="module")
def torchrl():
    """``torchrl.envs``, imported without keeping its global multiprocessing change.

    Importing torchrl sets the process-wide start method to "spawn"; the other tests of
    this worker (and Tianshou's SubprocVectorEnv here) keep the platform default.
    """
    before = multiprocessing.get_start_method(allow_none=True)
    pytest.importorskip("torchrl")
    import torchrl.envs
    import torchrl.envs.utils

    multiprocessing.set_start_method(before, force=True)
    return torchrl.envs


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_torchrl_gymenv_passes_check_env_specs_and_rolls_out(torchrl, env_id, kwargs):
    # GymEnv probes frameskip=...: our TypeError must make it drop the keyword
    env = torchrl.GymEnv(env_id, **kwargs)
    assert env.wrapper_frame_skip == 1
    assert env.batch_size == ()
    torchrl.utils.check_env_specs(env, seed=0)
    env.set_seed(0)
    td = env.rollout(4, break_when_any_done=False)
    assert td.batch_size == (4,)
    assert td["next", "done"].any()  # one episode ended and the env reset itself
    assert tuple(td["action"].shape) == (4, *env.action_spec.shape)
    assert np.isfinite(td["next", "reward"].numpy()).all()
    env.close()


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_torchrl_wraps_the_native_vector_env(torchrl, env_id, kwargs):
    # TorchRL resets finished sub-envs itself: the native env in autoreset mode Disabled
    vec = gym.make_vec(
        env_id,
        num_envs=3,
        vectorization_mode="vector_entry_point",
        autoreset_mode="Disabled",
        **kwargs,
    )
    env = torchrl.GymWrapper(vec)
    assert env.batch_size == (3,)
    torchrl.utils.check_env_specs(env, seed=0)
    td = env.rollout(4, break_when_any_done=False)
    assert td.batch_size == (3, 4)
    assert td["next", "done"].sum() >= 3  # every sub-env finished an episode
    env.close()


def test_torchrl_gymenv_num_envs_without_problem_objects(torchrl):
    # GymEnv(num_envs=n) batches info with gymnasium's vector envs: it can only batch
    # arrays, so the AllocationProblem objects stay out of info (env.problem keeps them)
    env = torchrl.GymEnv(CP, num_envs=2, include_problem=False, **CP_KW)
    assert env.batch_size == (2,)
    torchrl.utils.check_env_specs(env, seed=0)
    td = env.rollout(4, break_when_any_done=False)
    assert td.batch_size == (2, 4)
    env.close()


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_include_problem_false_leaves_only_the_problem_out(env_id, kwargs):
    with_problem = gym.make(env_id, **kwargs)
    without = gym.make(env_id, include_problem=False, **kwargs)
    _, a = with_problem.reset(seed=3)
    _, b = without.reset(seed=3)
    assert "problem" in a and "problem" not in b
    assert set(a) - set(b) == {"problem"}
    np.testing.assert_array_equal(without.unwrapped.problem.gains, a["problem"].gains)
    action = with_problem.action_space.sample()
    _, ra, _, _, a = with_problem.step(action)
    _, rb, _, _, b = without.step(action)
    assert ra == rb and set(a) - set(b) == {"problem"}
    with pytest.raises(ValueError, match="include_problem"):
        gym.make(env_id, include_problem="no", **kwargs)


def test_torchrl_serial_env_matches_separate_envs(torchrl):
    def make():
        return torchrl.GymEnv(CP, **CP_KW)

    serial = torchrl.SerialEnv(2, make)
    torchrl.utils.check_env_specs(serial, seed=0)
    serial.set_seed(5)
    td = serial.rollout(3, break_when_any_done=False)
    assert td.batch_size == (2, 3)
    rewards = td["next", "reward"].squeeze(-1).numpy()
    assert not np.allclose(rewards[0], rewards[1])  # the two sub-envs have their own seeds
    serial.close()


@pytest.mark.parametrize("vector", ["DummyVectorEnv", "SubprocVectorEnv"])
@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_tianshou_vector_envs_step_and_reset(vector, env_id, kwargs):
    tianshou_env = pytest.importorskip("tianshou.env")
    cls = getattr(tianshou_env, vector)
    venv = cls([lambda: gym.make(env_id, **kwargs) for _ in range(2)])
    try:
        venv.seed(0)
        obs, _ = venv.reset()
        space = venv.get_env_attr("observation_space")[0]
        assert obs.shape == (2, *space.shape)
        action_space = venv.get_env_attr("action_space")[0]
        ended = 0
        for _ in range(3):
            actions = np.stack([action_space.sample() for _ in range(2)])
            obs, reward, terminated, truncated, _ = venv.step(actions)
            assert obs.shape == (2, *space.shape) and reward.shape == (2,)
            assert np.isfinite(reward).all()
            done = np.flatnonzero(terminated | truncated)
            ended += done.size
            if done.size:
                venv.reset(done)
        assert ended >= 2  # both reached the end of an episode (horizon / rounds)
    finally:
        venv.close()


def test_tianshou_seeding_is_reproducible():
    tianshou_env = pytest.importorskip("tianshou.env")

    def rollout() -> np.ndarray:
        venv = tianshou_env.DummyVectorEnv([lambda: gym.make(CP, **CP_KW) for _ in range(2)])
        venv.seed(7)
        obs, _ = venv.reset()
        out = [obs]
        for _ in range(2):
            out.append(venv.step(np.zeros((2, 8), dtype=np.int64))[0])
        venv.close()
        return np.stack(out)

    first, second = rollout(), rollout()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[:, 0], first[:, 1])
