"""``exhaustive``: the true optimum by enumerating all ``(N*L)^K`` assignments.

Assignments are enumerated in chunks: chunk ``[s, s + chunk)`` of the mixed-radix index
``t = sum_k a_k (N L)^(K-1-k)`` (device 0 most significant; ``a_k = n_k L + l_k``) is
decoded to ``(channels, levels)`` arrays of shape (chunk, K) and scored with one call
of :meth:`AllocationProblem.reward`; only the running best is kept, so memory stays
bounded by the chunk (the SINR of a chunk needs ``chunk * K^2`` booleans; the chunk is
shrunk for large K). Ties keep the lowest index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import AssignmentAgent
from qfl_gym.validation import check_int
from qfl_gym.wireless.problem import AllocationProblem

DEFAULT_MAX_ASSIGNMENTS = 2**22
CHUNK_ELEMENTS = 2**24  # chunk * K^2 bound


def enumerate_chunk(start: int, stop: int, K: int, N: int, L: int):
    """``(channels, levels)`` of assignment indices ``start .. stop-1``, each (S, K)."""
    t = np.arange(start, stop, dtype=np.int64)
    powers = np.int64(N * L) ** np.arange(K - 1, -1, -1, dtype=np.int64)
    a = (t[:, None] // powers) % (N * L)
    return a // L, a % L


class ExhaustiveAgent(AssignmentAgent):
    """Exhaustive search on the env's reward (module docstring).

    Parameters
    ----------
    max_assignments : int
        Refuse (``ValueError``) problems with more than this many assignments
        (default 2**22, about 10 s here).
    chunk_size : int
        Assignments scored per batch (default 2**14; smaller for large K).
    """

    name = "exhaustive"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        max_assignments: int = DEFAULT_MAX_ASSIGNMENTS,
        chunk_size: int = 2**14,
    ) -> None:
        self.max_assignments = check_int("max_assignments", max_assignments, low=1)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        super().__init__(env, seed)
        c = self.codec
        self._check_size(c.num_devices, c.num_subchannels, c.num_power_levels)

    def _check_size(self, K: int, N: int, L: int) -> int:
        size = (N * L) ** K
        if size > self.max_assignments:
            raise ValueError(
                f"exhaustive search over (N*L)^K = ({N}*{L})^{K} = {size:.3g} assignments "
                f"exceeds max_assignments={self.max_assignments}; use a smaller scenario or "
                "raise max_assignments"
            )
        return size

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        K, N, L = problem.num_devices, problem.num_subchannels, problem.num_power_levels
        size = self._check_size(K, N, L)
        chunk = max(1, min(self.chunk_size, CHUNK_ELEMENTS // (K * K)))
        best, best_c, best_l = -np.inf, None, None
        for start in range(0, size, chunk):
            c, lv = enumerate_chunk(start, min(start + chunk, size), K, N, L)
            values = np.asarray(problem.reward(c, lv))
            j = int(np.argmax(values))
            if values[j] > best:
                best, best_c, best_l = float(values[j]), c[j], lv[j]
        stats["objective_evaluations"] = size
        stats["objective"] = best
        return best_c, best_l
