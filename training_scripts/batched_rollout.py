"""One agent on many seeds at once: QFL-v0's native vector env, one sub-env per seed.

The case study runs every agent on the same seeds. Instead of playing the seeds one
after another, :func:`run_agent_on_seeds` resets one
:class:`~qfl_gym.vector.qfl.QFLVectorEnv` with ``reset(seed=[s_0, ..., s_{n-1}])``
(sub-env ``i`` then follows the single env's trajectory for seed ``s_i``: same device
drops, data split and partition, initial model and channel draws) and trains the
devices of all sub-envs as one batch. The agent decides per sub-env: one agent object
per seed (built for a single QFL-v0 env with the same arguments, reset with that seed,
as :func:`~training_scripts.rollout.run_episode` does), fed sub-env ``i``'s observation
and ``info`` (``info["problem"]`` = ``env.problem(i)``).

:func:`pairing_fingerprint` hashes what must be identical across agents for a seed
(data split, partition, initial model, first channel gains), so a run can check that
its comparisons are really paired.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training_scripts.rollout import StepRecord, deliveries_of

ENV_ID = "qfl_gym/QFL-v0"


def make_vector_env(num_envs: int, env_kwargs: dict[str, Any]):
    """``gym.make_vec(QFL-v0, num_envs, vectorization_mode="vector_entry_point", ...)``."""
    import gymnasium as gym

    import qfl_gym

    assert qfl_gym
    return gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs
    )


def sub_env_info(info: dict[str, Any], index: int) -> dict[str, Any]:
    """Sub-env ``index``'s entries of a batched ``info`` (keys it reports)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not bool(np.asarray(mask)[index]):
            continue
        out[key] = value[index] if isinstance(value, np.ndarray) and value.ndim else value
    return out


def pairing_fingerprint(vec_env, index: int) -> str:
    """Hash of sub-env ``index``'s data split, partition, initial model and gains.

    Call right after ``reset``: agents that played the same seed must agree.
    """
    env = getattr(vec_env, "unwrapped", vec_env)
    learner = env.learners[index]
    h = hashlib.sha256()
    for array in (
        learner.data.train_index,
        learner.partition.indices,
        learner.partition.counts,
        learner.global_params.numpy(),
        np.asarray(env.problem(index).gains),
    ):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def run_agent_on_seeds(
    env_kwargs: dict[str, Any],
    make_agent: Callable[[Any], Any],
    agent_name: str,
    seeds: Sequence[int],
    on_round: Callable[[int], None] | None = None,
) -> tuple[list[StepRecord], dict[int, str]]:
    """Play one episode per seed with ``make_agent``'s agents on one vector env.

    Parameters
    ----------
    env_kwargs : dict
        QFL-v0 arguments (``scenario`` and overrides), the same for every seed.
    make_agent : callable
        ``make_agent(env) -> Agent`` for a single QFL-v0 env; called once per seed.
    agent_name : str
        Name written in the records.
    seeds : sequence of int
        One sub-env (and one episode) per seed.
    on_round : callable, optional
        Called with the number of rounds done after every round.

    Returns
    -------
    rows : list of StepRecord
        One per seed and round, ordered by seed then round (as
        :func:`~training_scripts.rollout.run_agents` orders one agent's rows).
    fingerprints : dict
        ``{seed: pairing_fingerprint}`` at reset.
    """
    import gymnasium as gym

    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {seeds}")
    n = len(seeds)
    probe = gym.make(ENV_ID, **env_kwargs)
    agents = [make_agent(probe) for _ in seeds]
    for agent, seed in zip(agents, seeds, strict=True):
        agent.reset(seed=seed)
    env = make_vector_env(n, env_kwargs)
    try:
        base = getattr(env, "unwrapped", env)
        obs, info = env.reset(seed=seeds)
        fingerprints = {s: pairing_fingerprint(env, i) for i, s in enumerate(seeds)}
        per_seed: list[list[StepRecord]] = [[] for _ in seeds]
        active = np.ones(n, dtype=bool)
        step = 0
        while active.any():
            actions = np.zeros((n, *env.single_action_space.shape), dtype=np.int64)
            times = np.full(n, math.nan)
            for i in np.flatnonzero(active):
                one = sub_env_info(info, i)
                one["problem"] = base.problem(int(i))  # also when info leaves it out
                actions[i] = agents[i].act(obs[i], one)
                times[i] = float(agents[i].last_stats.get("decision_time_s", math.nan))
            obs, reward, terminated, truncated, info = env.step(actions)
            for i in np.flatnonzero(active):
                one = sub_env_info(info, i)
                per_seed[i].append(
                    StepRecord(
                        agent=agent_name,
                        seed=seeds[i],
                        episode=0,
                        step=step,
                        reward=float(reward[i]),
                        sum_rate_mbps=float(one["sum_rate_bps"]) / 1e6,
                        energy_j=float(np.sum(one["energy_j"])),
                        deliveries=deliveries_of(one),
                        global_loss=float(one.get("global_loss", math.nan)),
                        global_accuracy=float(one.get("global_accuracy", math.nan)),
                        decision_time_s=float(times[i]),
                        round_time_s=float(one.get("round_time_s", math.nan)),
                        wall_time_s=float(one.get("wall_time_s", math.nan)),
                    )
                )
            active &= ~(terminated | truncated)
            step += 1
            if on_round is not None:
                on_round(step)
    finally:
        env.close()
        probe.close()
    return [r for rows in per_seed for r in rows], fingerprints
