"""Ray RLlib: env creators (usable on workers without the gymnasium registry), PPO smoke test."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip(
    "ray.rllib", reason="Ray RLlib is the 'rllib' extra: pip install 'qfl-gym[rllib]'"
)

from qfl_gym.integrations import rllib
from qfl_gym.vector import ChannelPowerVectorEnv

ENV_ID = "qfl_gym/ChannelPower-v0"
SMALL = {"scenario": "small", "horizon": 10}


def test_creators_build_single_vector_and_multiagent_envs():
    env = rllib.make_env(SMALL)
    assert env.unwrapped.config.num_devices == 4
    # RLlib's vector_entry_point mode passes num_envs: the native batched env
    venv = rllib.make_env({**SMALL, "num_envs": 6})
    assert isinstance(venv.unwrapped, ChannelPowerVectorEnv) and venv.num_envs == 6
    ma = rllib.make_multiagent_env({**SMALL, "reward": "individual"})
    obs, _ = ma.reset(seed=0)
    assert set(obs) == {f"device_{k}" for k in range(4)}
    actions = {a: ma.action_space[a].sample() for a in obs}
    _, rewards, terminateds, truncateds, _ = ma.step(actions)
    assert terminateds["__all__"] is False and truncateds["__all__"] is False
    assert all(np.isfinite(r) for r in rewards.values())


def test_registration_names_and_picklable_creators():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    names = rllib.register_rllib_envs()
    assert ENV_ID in names and rllib.multiagent_name(ENV_ID) in names
    for name in names:
        assert _global_registry.contains(ENV_CREATOR, name)
    creator = pickle.loads(pickle.dumps(rllib._Creator(ENV_ID, multiagent=False)))
    assert creator(SMALL).unwrapped.config.horizon == 10
    with pytest.raises(gym.error.Error, match="Nope"):
        rllib.register_rllib_envs(["qfl_gym/Nope-v0"])


def test_ppo_config_uses_the_native_vector_env_for_batched_runners():
    config = rllib.ppo_config(ENV_ID, num_env_runners=4, num_envs_per_env_runner=64)
    assert config.gym_env_vectorize_mode == "vector_entry_point"
    assert (config.num_env_runners, config.num_envs_per_env_runner) == (4, 64)
    multi = rllib.ppo_config(ENV_ID, multiagent=True)
    assert multi.env == rllib.multiagent_name(ENV_ID)
    assert multi.policies.keys() == {rllib.SHARED_POLICY}
    assert rllib.shared_policy("device_3", None) == rllib.SHARED_POLICY


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib")  # RLlib's own
def test_ppo_trains_one_iteration_on_a_local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # single agent, sampled on a Ray worker (a fresh process: no qfl_gym ids in its
        # gymnasium registry) with a native batched env of 4
        config = rllib.ppo_config(
            ENV_ID,
            env_config=SMALL,
            num_env_runners=1,
            num_envs_per_env_runner=4,
            train_batch_size=120,
            minibatch_size=60,
            num_epochs=1,
            seed=0,
        )
        algo = config.build_algo()
        result = algo.train()
        algo.stop()
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled_lifetime"] >= 120
        assert np.isfinite(runners["episode_return_mean"])
        # multi-agent, one shared policy over the device agents
        config = rllib.ppo_config(
            ENV_ID,
            multiagent=True,
            env_config=SMALL,
            train_batch_size=80,
            minibatch_size=40,
            num_epochs=1,
            seed=0,
        )
        algo = config.build_algo()
        result = algo.train()
        algo.stop()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 80
        assert np.isfinite(result["env_runners"]["episode_return_mean"])
    finally:
        ray.shutdown()
