"""Fast classical heuristics: random, strongest sub-channel, balanced greedy, local search."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, AssignmentAgent
from qfl_gym.wireless.problem import AllocationProblem


class RandomAgent(Agent):
    """Uniformly random action from the agent's own seeded generator."""

    name = "random"

    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        return self.rng.integers(0, self.codec.nvec)


class StrongestChannelAgent(AssignmentAgent):
    """Every device on its own strongest sub-channel at maximum power (no balancing)."""

    name = "strongest"

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K = problem.num_devices
        return np.argmax(problem.gains, axis=1), np.full(K, problem.num_power_levels - 1)


def balanced_strongest(gains: np.ndarray) -> np.ndarray:
    """Sub-channel per device: strongest first, at most ``ceil(K/N)`` devices per channel.

    Devices are taken in descending order of their best gain; each gets its strongest
    sub-channel that still has room. Ties go to the lower index.
    """
    K, N = gains.shape
    capacity = -(-K // N)
    load = np.zeros(N, dtype=np.int64)
    channels = np.empty(K, dtype=np.int64)
    for k in np.argsort(-gains.max(axis=1), kind="stable"):
        prefs = np.argsort(-gains[k], kind="stable")
        n = next(int(n) for n in prefs if load[n] < capacity)
        channels[k] = n
        load[n] += 1
    return channels


class GreedyAgent(AssignmentAgent):
    """Balanced strongest-sub-channel assignment at the best common power level.

    Devices in descending order of their best gain each take their strongest
    sub-channel that holds fewer than ``ceil(K/N)`` devices. A common NOMA
    user-pairing baseline: it spreads devices over the sub-channels so no sub-channel
    is left idle. All devices transmit at the same level: the one that maximizes
    ``info["problem"]``'s objective (``L`` evaluations; ties go to the higher level).
    For the sum rate that is the highest level (every SINR grows with a common power
    scale), so with the default objective this is "everyone at full power"; with
    energy prices or other objectives it may be lower.
    """

    name = "greedy"

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K, L = problem.num_devices, problem.num_power_levels
        channels = balanced_strongest(problem.gains)
        if L == 1:
            return channels, np.zeros(K, dtype=np.int64)
        levels = np.repeat(np.arange(L)[:, None], K, axis=1)
        values = np.asarray(problem.reward(np.broadcast_to(channels, (L, K)), levels))
        best = L - 1 - int(np.argmax(values[::-1]))  # ties: the higher level
        stats["objective_evaluations"] = L
        stats["objective"] = float(values[best])
        return channels, levels[best]


class LocalSearchAgent(AssignmentAgent):
    """Best-response local search from the greedy assignment, on the env's reward.

    Sweeps over devices; each device moves to the (sub-channel, level) that maximizes
    ``problem.reward`` with all other devices fixed (all ``N*L`` options evaluated in
    one batched call). Stops after a sweep without improvement or ``max_sweeps``.
    The reward never decreases, so the result is at least as good as ``greedy``.

    Parameters
    ----------
    max_sweeps : int
        Upper bound on sweeps over all devices (default 10).
    """

    name = "local-search"

    def __init__(self, env, seed: int | None = None, max_sweeps: int = 10) -> None:
        if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, int) or max_sweeps < 1:
            raise ValueError(f"max_sweeps must be an integer >= 1, got {max_sweeps!r}")
        self.max_sweeps = max_sweeps
        super().__init__(env, seed)

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K, N, L = problem.num_devices, problem.num_subchannels, problem.num_power_levels
        channels = balanced_strongest(problem.gains)
        levels = np.full(K, L - 1)
        best = problem.reward(channels, levels)
        options_c, options_l = np.divmod(np.arange(N * L), L)
        evaluations = 1
        for _ in range(self.max_sweeps):
            improved = False
            for k in range(K):
                cand_c = np.repeat(channels[None], N * L, axis=0)
                cand_l = np.repeat(levels[None], N * L, axis=0)
                cand_c[:, k] = options_c
                cand_l[:, k] = options_l
                values = problem.reward(cand_c, cand_l)
                evaluations += N * L
                j = int(np.argmax(values))
                if values[j] > best * (1 + 1e-12) + 1e-12:
                    best = float(values[j])
                    channels, levels = cand_c[j], cand_l[j]
                    improved = True
            if not improved:
                break
        stats["objective_evaluations"] = evaluations
        stats["objective"] = best
        return channels, levels
