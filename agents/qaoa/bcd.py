"""Block coordinate descent (BCD) over blocks of devices, shared by QAOA and annealing.

Large instances (the case study: 50 devices) do not fit a simulable number of qubits.
BCD starts from an incumbent assignment (the ``greedy`` agent's: each device on its
strongest sub-channel with room, at maximum power) and sweeps: the devices are
shuffled (seeded), cut into blocks of ``block_size`` devices, and each block is
re-optimized by a *block solver* with every other device held fixed. A block's
proposal replaces the incumbent only if its exact reward is higher, so the reward never
decreases. Sweeps stop after one without improvement or after ``max_sweeps``.

``schedule`` is the sequence of :class:`~agents.qaoa.block.Block` variable sets
visited per sweep: ``("joint",)`` re-optimizes sub-channel and power together;
``("channel", "level")`` alternates a channel-selection pass and a power pass, the
decomposition of the reference study (QUBO subproblems for channel selection and for
transmit power).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agents.qaoa.block import Block
from qfl_gym.wireless.problem import AllocationProblem

SCHEDULES: dict[str, tuple[str, ...]] = {
    "joint": ("joint",),
    "alternate": ("channel", "level"),
}

#: ``block -> (candidate option tuples (S, m), their exact rewards (S,))``
BlockSolver = Callable[[Block], tuple[np.ndarray, np.ndarray]]


@dataclass
class BCDResult:
    """Outcome of :func:`block_coordinate_descent`."""

    channels: np.ndarray
    levels: np.ndarray
    reward: float
    sweeps: int = 0
    blocks_solved: int = 0
    accepted: int = 0
    trace: list[float] = field(default_factory=list)


def block_coordinate_descent(
    problem: AllocationProblem,
    solver: BlockSolver,
    *,
    channels: np.ndarray,
    levels: np.ndarray,
    block_size: int,
    schedule: tuple[str, ...],
    max_sweeps: int,
    rng: np.random.Generator,
) -> BCDResult:
    """Run BCD from ``(channels, levels)`` (module docstring).

    Parameters
    ----------
    problem : AllocationProblem
    solver : callable
        :data:`BlockSolver`; its rewards must be exact env rewards (Mbit/s).
    channels, levels : ndarray of int, shape (K,)
        Initial incumbent.
    block_size : int
        Devices per block (the last block of a sweep may be smaller).
    schedule : tuple of str
        Variable sets per sweep (module docstring).
    max_sweeps : int
    rng : numpy.random.Generator
        Shuffles the devices each sweep.

    Returns
    -------
    BCDResult
        ``trace`` holds the reward before the first sweep and after each sweep.
    """
    K = problem.num_devices
    c = np.array(channels, dtype=np.int64)
    lv = np.array(levels, dtype=np.int64)
    best = float(problem.reward(c, lv))
    result = BCDResult(c, lv, best, trace=[best])
    for _ in range(max_sweeps):
        improved = False
        order = rng.permutation(K)
        for variables in schedule:
            for start in range(0, K, block_size):
                devices = np.sort(order[start : start + block_size])
                block = Block(problem, c, lv, devices, variables)
                options, rewards = solver(block)
                result.blocks_solved += 1
                if len(rewards) == 0:
                    continue
                j = int(np.argmax(rewards))
                if rewards[j] > best + 1e-12 * max(1.0, abs(best)):
                    cc, ll = block.assignments(options[j : j + 1])
                    c, lv, best = cc[0], ll[0], float(rewards[j])
                    result.accepted += 1
                    improved = True
        result.sweeps += 1
        result.trace.append(best)
        if not improved:
            break
    result.channels, result.levels, result.reward = c, lv, best
    return result
