"""Run agents on seeded episodes and record one row per step.

Every agent sees the same episodes: episode ``e`` of seed ``s`` resets the environment
with ``episode_seed(s, e)``, so channel realizations are identical across agents (the
channel does not depend on the actions taken).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

COLUMNS = (
    "agent",
    "seed",
    "episode",
    "step",
    "reward",
    "sum_rate_mbps",
    "energy_j",
    "deliveries",
    "global_loss",
    "global_accuracy",
    "decision_time_s",
    "round_time_s",
    "wall_time_s",
)
TIMING_COLUMNS = ("decision_time_s",)


@dataclass
class StepRecord:
    """One decision of one agent (a CSV row)."""

    agent: str
    seed: int
    episode: int
    step: int
    reward: float
    sum_rate_mbps: float
    energy_j: float
    deliveries: int
    global_loss: float
    global_accuracy: float
    decision_time_s: float
    #: QFL-v0's simulated round duration and cumulative wall clock (s; NaN where absent)
    round_time_s: float = math.nan
    wall_time_s: float = math.nan


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of episode ``episode`` under base seed ``seed``."""
    return int(seed) + 1_000_003 * int(episode)


def deliveries_of(info: dict[str, Any]) -> int:
    """Updates delivered (QFL-v0) or devices meeting the minimum rate (ChannelPower-v0)."""
    if "delivered" in info:
        return int(np.sum(info["delivered"]))
    return int(np.sum(~np.asarray(info["outage"])))


def run_episode(
    env,
    agent,
    agent_name: str,
    seed: int,
    episode: int = 0,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[StepRecord]:
    """Play one seeded episode with ``agent``; return its step records."""
    obs, info = env.reset(seed=episode_seed(seed, episode))
    agent.reset(seed=episode_seed(seed, episode))
    rows: list[StepRecord] = []
    step = 0
    done = False
    while not done and (max_steps is None or step < max_steps):
        action = agent.act(obs, info)
        decision_time = float(agent.last_stats.get("decision_time_s", math.nan))
        obs, reward, terminated, truncated, info = env.step(action)
        rows.append(
            StepRecord(
                agent=agent_name,
                seed=int(seed),
                episode=int(episode),
                step=step,
                reward=float(reward),
                sum_rate_mbps=float(info["sum_rate_bps"]) / 1e6,
                energy_j=float(np.sum(info["energy_j"])),
                deliveries=deliveries_of(info),
                global_loss=float(info.get("global_loss", math.nan)),
                global_accuracy=float(info.get("global_accuracy", math.nan)),
                decision_time_s=decision_time,
                round_time_s=float(info.get("round_time_s", math.nan)),
                wall_time_s=float(info.get("wall_time_s", math.nan)),
            )
        )
        step += 1
        if on_step is not None:
            on_step(step)
        done = terminated or truncated
    return rows


def run_agents(
    make_env: Callable[[], Any],
    agent_factories: dict[str, Callable[[Any], Any]],
    seeds: Iterable[int],
    episodes: int = 1,
    max_steps: int | None = None,
    progress: Callable[[str, int, int, int], None] | None = None,
) -> list[StepRecord]:
    """Every agent on every (seed, episode); ``progress(agent, seed, episode, step)``."""
    rows: list[StepRecord] = []
    for name, factory in agent_factories.items():
        env = make_env()
        agent = factory(env)
        for seed in seeds:
            for episode in range(episodes):
                cb = None
                if progress is not None:

                    def cb(step, _n=name, _s=seed, _e=episode):
                        progress(_n, _s, _e, step)

                rows.extend(run_episode(env, agent, name, seed, episode, max_steps, cb))
        env.close()
    return rows


def records_to_dicts(rows: Iterable[StepRecord]) -> list[dict[str, Any]]:
    """Rows as plain dicts in :data:`COLUMNS` order."""
    return [asdict(r) for r in rows]
