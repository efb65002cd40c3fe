"""The one interface every decision-maker implements: classical, QAOA and RL.

An agent is built for one environment (it reads the action encoding and scenario from
it), is seeded, and maps ``(observation, info)`` to an action in the environment's
format. Optimizers read ``info["problem"]``; learned policies read the observation.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np

from qfl_gym.envs.action import ActionCodec
from qfl_gym.wireless.problem import AllocationProblem


def unwrap_codec(env: gym.Env) -> ActionCodec:
    """The :class:`ActionCodec` of a (possibly wrapped) qfl_gym environment."""
    codec = getattr(getattr(env, "unwrapped", env), "codec", None)
    if not isinstance(codec, ActionCodec):
        raise ValueError(
            f"agents need a qfl_gym environment (with a channel/power action codec); "
            f"got {type(getattr(env, 'unwrapped', env)).__name__}"
        )
    return codec


def problem_from(info: dict[str, Any] | None) -> AllocationProblem:
    """``info["problem"]``, or a clear error if the caller did not pass the env's info."""
    problem = None if info is None else info.get("problem")
    if not isinstance(problem, AllocationProblem):
        raise ValueError(
            "this agent optimizes over info['problem']: pass the info dict returned by "
            "env.reset() / env.step() to act(observation, info)"
        )
    return problem


class Agent(ABC):
    """Base class of every agent.

    Parameters
    ----------
    env : gymnasium.Env
        A qfl_gym environment (wrappers allowed); its action encoding is used.
    seed : int, optional
        Seed of the agent's own ``numpy.random.Generator`` (and torch, where used).

    Attributes
    ----------
    name : str
        Registry name (``agents.make(name, ...)``).
    last_stats : dict
        Statistics of the last :meth:`act`: at least ``decision_time_s`` and
        ``objective_evaluations``; QAOA adds ``qubits``, ``depth``, ``shots`` and
        ``circuit_executions``.
    """

    name: str = "agent"

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        self.env = env
        self.codec = unwrap_codec(env)
        self.action_space = env.action_space
        self.last_stats: dict[str, Any] = {}
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the agent (``None`` keeps fresh entropy) and clear its state."""
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.last_stats = {}

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """The action for the current decision, in the environment's format.

        Times :meth:`_act` and records ``decision_time_s`` in :attr:`last_stats`.
        """
        start = time.perf_counter()
        stats: dict[str, Any] = {"objective_evaluations": 0}
        action = self._act(observation, info, stats)
        stats["decision_time_s"] = time.perf_counter() - start
        self.last_stats = stats
        return action

    @abstractmethod
    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        """Compute the action; add counters to ``stats``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seed={self.seed!r})"


class AssignmentAgent(Agent):
    """An agent that optimizes ``(channels, power_levels)`` on ``info["problem"]``."""

    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        problem = problem_from(info)
        channels, levels = self.solve(problem, stats)
        return self.codec.encode(channels, levels)

    @abstractmethod
    def solve(
        self, problem: AllocationProblem, stats: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(channels (K,), power_levels (K,))`` for ``problem``."""
