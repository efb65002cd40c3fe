"""``annealing``: simulated annealing on the QUBO, the classical twin of ``qaoa-qubo``.

The problem is written as the ``qubo``-mode QUBO of :mod:`agents.qaoa.qubo` (one-hot
variable per (device, sub-channel, level), pairwise interference model, automatic
one-hot penalty) and handed as a :class:`dimod.BinaryQuadraticModel` to
``dwave.samplers.SimulatedAnnealingSampler`` with ``num_reads`` reads of
``num_sweeps`` Metropolis sweeps each (geometric temperature schedule, the sampler's
default ``beta_range``). Each read is decoded (infeasible ones repaired like QAOA
samples), the distinct assignments are scored with the env's reward and the best is
kept. ``num_reads`` defaults to QAOA's shots (:data:`agents.qaoa.DEFAULT_SHOTS`), so
both score the same number of candidate assignments with the true objective: the
equal-budget comparison.

Problems with more than ``max_variables`` (default 48) one-hot variables (``K N L``;
the case study has 800) are solved by the same block coordinate descent as QAOA
(:mod:`agents.qaoa.bcd`) over blocks of ``max_variables // (N L)`` devices from the
greedy assignment. The sampler's seed is drawn from the agent's generator, so a seeded
agent is deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import AssignmentAgent
from agents.classical.heuristics import balanced_strongest
from agents.qaoa import DEFAULT_SHOTS
from agents.qaoa.bcd import block_coordinate_descent
from agents.qaoa.block import Block
from agents.qaoa.encoding import Encoding
from agents.qaoa.qubo import build_qubo, option_scores
from qfl_gym.validation import check_float, check_int
from qfl_gym.wireless.problem import AllocationProblem


class AnnealingAgent(AssignmentAgent):
    """Simulated annealing (dwave-samplers) on the QUBO (module docstring).

    Parameters
    ----------
    num_reads : int
        Annealing runs per (block) solve; each gives one candidate.
    num_sweeps : int
        Metropolis sweeps per read.
    max_variables : int
        One-hot variables per QUBO (default 48: three devices at N = L = 4, the block
        of the 12-qubit QAOA); larger problems use block coordinate descent.
    max_sweeps : int
        BCD sweeps at most.
    penalty : float, optional
        One-hot penalty (Mbit/s); default automatic.
    """

    name = "annealing"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        num_reads: int = DEFAULT_SHOTS,
        num_sweeps: int = 200,
        max_variables: int = 48,
        max_sweeps: int = 3,
        penalty: float | None = None,
    ) -> None:
        self.num_reads = check_int("num_reads", num_reads, low=1)
        self.num_sweeps = check_int("num_sweeps", num_sweeps, low=1)
        self.max_variables = check_int("max_variables", max_variables, low=1)
        self.max_sweeps = check_int("max_sweeps", max_sweeps, low=1)
        if penalty is not None:
            check_float("penalty", penalty, low=0.0, low_inclusive=False)
        self.penalty = penalty
        super().__init__(env, seed)
        per_device = self.codec.num_subchannels * self.codec.num_power_levels
        if per_device > self.max_variables:
            raise ValueError(
                f"one device needs N*L = {per_device} one-hot variables, more than "
                f"max_variables={self.max_variables}"
            )
        self.block_size = self.max_variables // per_device

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        from dwave.samplers import SimulatedAnnealingSampler

        sampler = SimulatedAnnealingSampler()
        K, L = problem.num_devices, problem.num_power_levels
        stats.update(reads=0, blocks=0, objective_evaluations=0)

        def solver(block: Block):
            qubo = build_qubo(block, penalty=self.penalty)
            bqm = qubo.to_bqm()
            result = sampler.sample(
                bqm,
                num_reads=self.num_reads,
                num_sweeps=self.num_sweeps,
                seed=int(self.rng.integers(2**31 - 1)),
            )
            columns = [result.variables.index(label) for label in qubo.labels]
            bits = np.asarray(result.record.sample)[:, columns]
            enc = Encoding("one-hot", block.num_devices, block.num_options)
            options, _ = enc.decode_bits(bits, option_scores(block))
            options = np.unique(options, axis=0)
            rewards = block.rewards(options)
            stats["reads"] += self.num_reads
            stats["blocks"] += 1
            stats["objective_evaluations"] += len(rewards)
            stats["qubo_variables"] = max(stats.get("qubo_variables", 0), qubo.num_variables)
            return options, rewards

        if self.block_size >= K:
            # every device is in the block; the greedy incumbent only anchors the
            # separable surrogate of a minimum over devices (agents.qaoa.block)
            block = Block(
                problem, balanced_strongest(problem.gains), np.full(K, L - 1), np.arange(K)
            )
            options, rewards = solver(block)
            j = int(np.argmax(rewards))
            c, lv = block.assignments(options[j : j + 1])
            stats.update(mode="single", objective=float(rewards[j]))
            return c[0], lv[0]
        result = block_coordinate_descent(
            problem,
            solver,
            channels=balanced_strongest(problem.gains),
            levels=np.full(K, L - 1),
            block_size=self.block_size,
            schedule=("joint",),
            max_sweeps=self.max_sweeps,
            rng=self.rng,
        )
        stats.update(mode="bcd", sweeps=result.sweeps, objective=result.reward)
        return result.channels, result.levels
