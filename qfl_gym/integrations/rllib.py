"""Ray RLlib: env creators for every qfl_gym id, single- and multi-agent.

Ray workers are fresh processes: the gymnasium registry there holds no qfl_gym ids
until something imports ``qfl_gym``. RLlib therefore builds environments through Ray
Tune's registry (``ray.tune.registry.register_env``), whose creators are pickled to
every worker; the creators here import ``qfl_gym`` themselves.

:func:`register_rllib_envs` registers, for each id,

- ``"<id>"`` (e.g. ``"qfl_gym/ChannelPower-v0"``): the single-agent environment. When
  RLlib asks for a vector of them (``gym_env_vectorize_mode="vector_entry_point"``)
  and the id has a native batched env, the creator returns it (one numpy batch for
  all of a runner's environments);
- ``"<id>/devices"``: the multi-agent view
  (:class:`~qfl_gym.multiagent.parallel_env.DeviceParallelEnv`) through RLlib's
  ``ParallelPettingZooEnv``.

``env_config`` holds the environment's keyword arguments (``scenario``, field
overrides) and, for the multi-agent view, ``reward`` ("team" or "individual").

Scaling PPO over many workers (new API stack)::

    import ray
    from qfl_gym.integrations.rllib import ppo_config

    ray.init()
    config = ppo_config(
        "qfl_gym/ChannelPower-v0",
        num_env_runners=32,            # Ray actors sampling in parallel
        num_envs_per_env_runner=256,   # one native batched env per runner
        train_batch_size=65_536,
        env_config={"scenario": "case-study"},
    )
    algo = config.build_algo()
    for _ in range(100):
        result = algo.train()

This module imports Ray only inside its functions; install the ``rllib`` extra.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from qfl_gym.registration import CHANNEL_POWER_ID, ENV_IDS

MULTIAGENT_SUFFIX = "/devices"
SHARED_POLICY = "shared"


def multiagent_name(env_id: str) -> str:
    """The RLlib name of the multi-agent view of ``env_id``."""
    return env_id + MULTIAGENT_SUFFIX


def make_env(env_config: dict[str, Any] | None = None, env_id: str = CHANNEL_POWER_ID) -> Any:
    """Single-agent creator: ``gym.make(env_id, **env_config)``.

    With ``env_config["num_envs"]`` (RLlib's ``vector_entry_point`` mode) it returns a
    ``gymnasium.vector.VectorEnv`` of that many copies: the native batched env when the
    id has one, else ``SyncVectorEnv``.
    """
    import qfl_gym  # noqa: F401  (registers the ids in this process, e.g. a Ray worker)

    config = dict(env_config or {})
    env_id = config.pop("env_id", env_id)
    num_envs = config.pop("num_envs", None)
    if num_envs is None:
        return gym.make(env_id, **config)
    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **config)


def make_multiagent_env(
    env_config: dict[str, Any] | None = None, env_id: str = CHANNEL_POWER_ID
) -> Any:
    """Multi-agent creator: ``ParallelPettingZooEnv(DeviceParallelEnv(env_id, ...))``."""
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from qfl_gym.multiagent.parallel_env import DeviceParallelEnv

    config = dict(env_config or {})
    env_id = config.pop("env_id", env_id)
    reward = config.pop("reward", "team")
    return ParallelPettingZooEnv(DeviceParallelEnv(env_id, reward=reward, **config))


class _Creator:
    """A picklable creator bound to one id (sent to every Ray worker)."""

    def __init__(self, env_id: str, multiagent: bool) -> None:
        self.env_id = env_id
        self.multiagent = multiagent

    def __call__(self, env_config: dict[str, Any] | None = None) -> Any:
        make = make_multiagent_env if self.multiagent else make_env
        return make(env_config, env_id=self.env_id)


def register_rllib_envs(env_ids: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """Register the single- and multi-agent creators of ``env_ids`` (default: all).

    Returns the registered names: each id and ``id + "/devices"``.
    """
    from ray.tune.registry import register_env

    import qfl_gym  # noqa: F401

    names = []
    for env_id in ENV_IDS if env_ids is None else env_ids:
        gym.spec(env_id)  # unknown ids fail here, with gymnasium's message
        register_env(env_id, _Creator(env_id, multiagent=False))
        register_env(multiagent_name(env_id), _Creator(env_id, multiagent=True))
        names += [env_id, multiagent_name(env_id)]
    return names


def shared_policy(agent_id: str, *args: Any, **kwargs: Any) -> str:
    """Policy mapping: every device agent uses the one shared policy (parameter sharing)."""
    return SHARED_POLICY


def ppo_config(
    env_id: str = CHANNEL_POWER_ID,
    *,
    multiagent: bool = False,
    env_config: dict[str, Any] | None = None,
    num_env_runners: int = 0,
    num_envs_per_env_runner: int = 1,
    train_batch_size: int = 4000,
    minibatch_size: int = 256,
    num_epochs: int = 10,
    lr: float = 3e-4,
    seed: int | None = None,
) -> Any:
    """An RLlib ``PPOConfig`` (new API stack) for ``env_id``, ready for ``build_algo()``.

    Parameters
    ----------
    env_id : str
        A qfl_gym id; registered with :func:`register_rllib_envs`.
    multiagent : bool
        Train the per-device agents of ``id + "/devices"`` with one shared policy.
    env_config : dict, optional
        Environment arguments (and ``reward`` for the multi-agent view).
    num_env_runners : int
        Ray actors that sample in parallel (0: sample in the driver).
    num_envs_per_env_runner : int
        Environments per runner; single-agent ids with a native batched env then step
        them as one ``VectorEnv`` (``gym_env_vectorize_mode="vector_entry_point"``).
    train_batch_size, minibatch_size, num_epochs, lr :
        PPO's ``train_batch_size_per_learner``, ``minibatch_size``, ``num_epochs`` and
        learning rate.
    seed : int, optional
        RLlib's ``debugging(seed=...)``.
    """
    from ray.rllib.algorithms.ppo import PPOConfig

    register_rllib_envs([env_id])
    name = multiagent_name(env_id) if multiagent else env_id
    runners: dict[str, Any] = {
        "num_env_runners": num_env_runners,
        "num_envs_per_env_runner": num_envs_per_env_runner,
    }
    if not multiagent and num_envs_per_env_runner > 1 and gym.spec(env_id).vector_entry_point:
        runners["gym_env_vectorize_mode"] = "vector_entry_point"
    config = (
        PPOConfig()
        .environment(env=name, env_config=dict(env_config or {}))
        .env_runners(**runners)
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=minibatch_size,
            num_epochs=num_epochs,
            lr=lr,
        )
    )
    if multiagent:
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        modules = MultiRLModuleSpec(rl_module_specs={SHARED_POLICY: RLModuleSpec()})
        config = config.multi_agent(
            policies={SHARED_POLICY}, policy_mapping_fn=shared_policy
        ).rl_module(rl_module_spec=modules)
    if seed is not None:
        config = config.debugging(seed=seed)
    return config
