"""``random-sampling``: the equal-budget baseline of QAOA.

Draws ``samples`` assignments uniformly at random (every device an independent uniform
sub-channel and power level) from the agent's seeded generator, scores them with the
env's reward in batches, and keeps the best. With ``samples`` equal to the shots QAOA
takes it answers the question "does QAOA find better assignments than the same number
of blind guesses?". The default equals QAOA's default shots per block solve
(:data:`agents.qaoa.DEFAULT_SHOTS`); for block-decomposed QAOA pass its total
(``last_stats["shots"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import AssignmentAgent
from agents.qaoa import DEFAULT_SHOTS
from qfl_gym.validation import check_int
from qfl_gym.wireless.problem import AllocationProblem


class RandomSamplingAgent(AssignmentAgent):
    """Best of ``samples`` uniformly random assignments (module docstring).

    Parameters
    ----------
    samples : int
        Assignments drawn per decision (default :data:`agents.qaoa.DEFAULT_SHOTS`).
    chunk_size : int
        Assignments scored per batch (bounds memory).
    """

    name = "random-sampling"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        samples: int = DEFAULT_SHOTS,
        chunk_size: int = 4096,
    ) -> None:
        self.samples = check_int("samples", samples, low=1)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        super().__init__(env, seed)

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K, N, L = problem.num_devices, problem.num_subchannels, problem.num_power_levels
        best, best_c, best_l = -np.inf, None, None
        for start in range(0, self.samples, self.chunk_size):
            S = min(self.chunk_size, self.samples - start)
            c = self.rng.integers(0, N, size=(S, K))
            lv = self.rng.integers(0, L, size=(S, K))
            values = np.asarray(problem.reward(c, lv))
            j = int(np.argmax(values))
            if values[j] > best:
                best, best_c, best_l = float(values[j]), c[j], lv[j]
        stats["objective_evaluations"] = self.samples
        stats["objective"] = best
        return best_c, best_l
