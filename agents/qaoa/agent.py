"""The ``qaoa`` and ``qaoa-qubo`` agents: QAOA on ``info["problem"]``.

Per decision:

1. **Blocks.** If every device fits the qubit budget at once (``K * qubits_per_device
   <= max_qubits`` with joint variables) the whole problem is one block and the
   answer is QAOA's best sample. Otherwise block coordinate descent
   (:mod:`agents.qaoa.bcd`) from the greedy assignment re-optimizes blocks of
   ``block_size`` devices (default: as many as fit ``max_qubits``), others fixed.
2. **Cost.** :mod:`agents.qaoa.qubo`: ``exact`` (the true reward of every bitstring)
   or ``qubo`` (pairwise interference model + one-hot penalty), normalized to a
   unit-variance feasible landscape.
3. **Angles.** :mod:`agents.qaoa.angles`: INTERP from a depth-1 grid (default), linear
   ramp or given angles; L-BFGS-B by default; CVaR objective with ``alpha = 0.25`` by
   default (on 60 small instances it raised the best sample from 0.9975 to 0.9993 of
   the optimum on average and the optimal fraction from 67% to 82% compared with the
   plain expectation, at p = 2 and 100 shots; ``cvar_alpha=1`` restores it). In BCD,
   later blocks of a decision start from the previous block's optimized angles
   (``warm_start``; angle transfer works because the cost is normalized).
4. **Decode.** ``shots`` bitstrings are sampled from the optimized state with the
   agent's seeded generator, infeasible ones repaired (:mod:`agents.qaoa.encoding`),
   the distinct assignments scored with the env's reward and the best returned (in BCD:
   accepted only if it beats the incumbent).

The simulator is the numpy state vector of :mod:`agents.qaoa.simulator`
(``device="numpy"``, default) or the PennyLane circuit of :mod:`agents.qaoa.circuit`
(``device="default.qubit"`` or ``"lightning.qubit"``); both give the same energies.
With noise (``depolarizing_p`` / ``amplitude_damping_gamma`` after every gate layer,
:mod:`agents.qaoa.noise`) the numpy path is a density matrix with adjoint gradients
(``max_qubits`` <= 10) and the PennyLane path ``device="default.mixed"``; angles are
optimized on the exact noisy expectation and the ``shots`` are drawn from the noisy
distribution.

``last_stats`` after :meth:`act`: ``decision_time_s``, ``objective_evaluations``
(assignments whose true reward was computed, including the whole block table in
``exact`` mode), ``qubits`` (largest block), ``depth``, ``shots`` (total drawn),
``circuit_executions`` (simulated circuit runs: each objective evaluation, each
adjoint gradient counted as one, and each sampling run), ``blocks``, ``sweeps``,
``objective`` (reward of the returned assignment, Mbit/s), ``mode`` (``"single"``
or ``"bcd"``) and, in BCD, ``bcd_trace`` (reward before and after each sweep). In
single-block ``exact`` mode also ``expected_objective`` (mean reward
of the optimized state's measurement distribution) and ``uniform_objective`` (same
for the uniform superposition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.base import AssignmentAgent
from agents.classical.heuristics import balanced_strongest
from agents.qaoa import DEFAULT_SHOTS
from agents.qaoa.angles import DEFAULT_RAMP, INITS, OPTIMIZERS, AngleResult, optimize_angles
from agents.qaoa.bcd import SCHEDULES, block_coordinate_descent
from agents.qaoa.block import Block
from agents.qaoa.encoding import ENCODINGS, default_encoding, is_power_of_two
from agents.qaoa.noise import MAX_NOISY_QUBITS
from agents.qaoa.qubo import COST_MODES, BlockCost, build_cost
from qfl_gym.config_fields import ConfigFields, check_field_names, param
from qfl_gym.validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_probability,
)
from qfl_gym.wireless.problem import AllocationProblem

DEVICES = ("numpy", "default.qubit", "lightning.qubit", "default.mixed")
VARIABLE_MODES = ("auto", "joint", "alternate")
MAX_QUBITS = 20


@dataclass(frozen=True)
class QAOAConfig(ConfigFields):
    """Options of the QAOA agent (pass them as keyword arguments to ``agents.make``)."""

    p: int = param(2, "layers", "QAOA depth")
    shots: int = param(
        DEFAULT_SHOTS,
        "-",
        "bitstrings sampled per block solve",
        "reference study: 1, 40, 100 shots",
    )
    cost: str = param("exact", "-", f"cost mode: {', '.join(COST_MODES)}")
    encoding: str | None = param(
        None,
        "-",
        "binary | one-hot; default binary if the option count is a power of two "
        "(qubo: always one-hot)",
    )
    variables: str = param(
        "auto",
        "-",
        "joint (sub-channel and level together) | alternate (channel pass, then "
        "power pass) | auto (joint if one device fits max_qubits)",
    )
    optimizer: str = param("L-BFGS-B", "-", f"one of {', '.join(OPTIMIZERS)}")
    maxiter: int = param(100, "-", "local optimizer iterations per depth (0: fixed angles)")
    init: str | tuple = param(
        "interp", "-", "interp | ramp | (gammas, betas)", "Zhou et al., PRX 10, 021067 (2020)"
    )
    ramp: tuple[float, float] = param(DEFAULT_RAMP, "rad", "linear-ramp (d_gamma, d_beta)")
    cvar_alpha: float = param(
        0.25,
        "-",
        "CVaR level in (0, 1]; 1 = expectation",
        "Barkoutsos et al., Quantum 4, 256 (2020)",
    )
    learning_rate: float = param(0.05, "rad", "step size of optimizer='adam'")
    device: str = param("numpy", "-", f"simulator: {', '.join(DEVICES)}")
    max_qubits: int = param(12, "qubits", f"qubit budget per block (<= {MAX_QUBITS})")
    block_size: int | None = param(None, "devices", "devices per block; default: fill max_qubits")
    max_sweeps: int = param(3, "-", "BCD sweeps at most")
    penalty: float | None = param(None, "Mbit/s", "one-hot penalty; default automatic")
    warm_start: bool = param(True, "-", "BCD blocks start from the previous block's angles")
    depolarizing_p: float = param(
        0.0,
        "-",
        "depolarizing probability per qubit after every gate layer (Hadamards, each cost "
        "and mixer layer), in [0, 1]; noise runs the numpy density matrix (device="
        "'numpy') or PennyLane's 'default.mixed'",
        "Nielsen and Chuang eq. 8.103",
    )
    amplitude_damping_gamma: float = param(
        0.0,
        "-",
        "amplitude-damping gamma per qubit after every gate layer, in [0, 1]",
        "Nielsen and Chuang eq. 8.108",
    )

    def __post_init__(self) -> None:
        check_int("p", self.p, low=1, high=50)
        check_int("shots", self.shots, low=1, high=10**7)
        check_choice("cost", self.cost, COST_MODES)
        if self.encoding is not None:
            check_choice("encoding", self.encoding, ENCODINGS)
        check_choice("variables", self.variables, VARIABLE_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("maxiter", self.maxiter, low=0)
        if isinstance(self.init, str):
            check_choice("init", self.init, INITS)
        else:
            try:
                gammas, betas = (tuple(float(v) for v in a) for a in self.init)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"init must be 'interp', 'ramp' or (gammas, betas), got {self.init!r}"
                ) from exc
            if len(gammas) != self.p or len(betas) != self.p:
                raise ValueError(
                    f"init angles must be two sequences of length p={self.p}, got "
                    f"{len(gammas)} and {len(betas)}"
                )
            object.__setattr__(self, "init", (gammas, betas))
        if len(self.ramp) != 2:
            raise ValueError(f"ramp must be (d_gamma, d_beta), got {self.ramp!r}")
        object.__setattr__(self, "ramp", tuple(float(v) for v in self.ramp))
        check_float("cvar_alpha", self.cvar_alpha, low=0.0, high=1.0, low_inclusive=False)
        check_float("learning_rate", self.learning_rate, low=0.0, low_inclusive=False)
        check_choice("device", self.device, DEVICES)
        check_int("max_qubits", self.max_qubits, low=1, high=MAX_QUBITS)
        if self.block_size is not None:
            check_int("block_size", self.block_size, low=1)
        check_int("max_sweeps", self.max_sweeps, low=1)
        if self.penalty is not None:
            check_float("penalty", self.penalty, low=0.0, low_inclusive=False)
        check_bool("warm_start", self.warm_start)
        check_probability("depolarizing_p", self.depolarizing_p)
        check_probability("amplitude_damping_gamma", self.amplitude_damping_gamma)
        if self.noisy:
            if self.device not in ("numpy", "default.mixed"):
                raise ValueError(
                    f"device {self.device!r} simulates pure states only; with noise "
                    f"(depolarizing_p={self.depolarizing_p}, amplitude_damping_gamma="
                    f"{self.amplitude_damping_gamma}) use device='numpy' (density matrix) "
                    "or 'default.mixed'"
                )
            if self.max_qubits > MAX_NOISY_QUBITS:
                raise ValueError(
                    f"max_qubits must be <= {MAX_NOISY_QUBITS} with noise on (a block's "
                    f"density matrix takes 16 * 4^n bytes and ~4^n time), got "
                    f"max_qubits={self.max_qubits}; pass max_qubits={MAX_NOISY_QUBITS} or less"
                )

    @property
    def noisy(self) -> bool:
        """Whether noise channels are on (the circuit is then simulated as a mixed state)."""
        return self.depolarizing_p > 0.0 or self.amplitude_damping_gamma > 0.0


@dataclass(frozen=True)
class Layout:
    """How a problem of shape (K, N, L) is cut into blocks under a config."""

    schedule: tuple[str, ...]
    encodings: dict  # variables -> encoding scheme
    qubits_per_device: int
    block_size: int
    single: bool  # the whole problem is one joint block


def _num_options(variables: str, N: int, L: int) -> int:
    return {"joint": N * L, "channel": N, "level": L}[variables]


def _bits(scheme: str, M: int) -> int:
    return (M.bit_length() - 1) if scheme == "binary" else M


def plan_layout(config: QAOAConfig, K: int, N: int, L: int) -> Layout:
    """Blocks, encodings and qubits for a (K, N, L) problem, or a ValueError.

    Raises
    ------
    ValueError
        If one device, or the requested ``block_size``, needs more qubits than
        ``max_qubits`` (the message names the budget).
    """

    def encoding_for(variables: str) -> str:
        M = _num_options(variables, N, L)
        scheme = config.encoding or ("one-hot" if config.cost == "qubo" else default_encoding(M))
        if scheme == "binary" and not is_power_of_two(M):
            raise ValueError(
                f"encoding='binary' needs power-of-two option counts; {variables} variables "
                f"have {M} options (N={N}, L={L}); use encoding='one-hot'"
            )
        if config.cost == "qubo" and scheme != "one-hot":
            raise ValueError("cost='qubo' needs encoding='one-hot' (or encoding=None)")
        return scheme

    budget = config.max_qubits
    variables = config.variables
    if variables == "auto":
        joint_bits = _bits(encoding_for("joint"), N * L)
        variables = "joint" if joint_bits <= budget else "alternate"
    schedule = SCHEDULES[variables]
    encodings = {v: encoding_for(v) for v in schedule}
    per_device = max(_bits(encodings[v], _num_options(v, N, L)) for v in schedule)
    if per_device > budget:
        raise ValueError(
            f"one device needs {per_device} qubits ({variables} variables, "
            f"{'/'.join(encodings.values())} encoding, N={N}, L={L}), more than the qubit "
            f"budget max_qubits={budget}; raise max_qubits (at most {MAX_QUBITS}) or use "
            "variables='alternate' / encoding='binary'"
        )
    if config.block_size is not None:
        block_size = config.block_size
        if block_size * per_device > budget:
            raise ValueError(
                f"block_size={block_size} devices x {per_device} qubits = "
                f"{block_size * per_device} qubits exceeds the qubit budget "
                f"max_qubits={budget}; lower block_size or raise max_qubits (at most "
                f"{MAX_QUBITS})"
            )
    else:
        block_size = max(1, budget // per_device) if per_device else K
    block_size = min(block_size, K)
    single = variables == "joint" and block_size >= K
    return Layout(schedule, encodings, per_device, block_size, single)


def sample_basis(probs: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """``shots`` basis indices drawn from ``probs`` (renormalized) with ``rng``."""
    cdf = np.cumsum(probs)
    draws = rng.random(shots) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, draws, side="right"), probs.size - 1)


@dataclass
class BlockSolution:
    """One QAOA block solve: the cost, the angles, the state and the decoded samples."""

    cost: BlockCost
    angles: AngleResult
    probabilities: np.ndarray
    options: np.ndarray  # distinct sampled option tuples (S, m)
    rewards: np.ndarray  # their exact rewards (S,)
    circuit_executions: int


def solve_block(
    block: Block,
    config: QAOAConfig,
    rng: np.random.Generator,
    encoding: str | None = None,
    init: str | tuple | None = None,
) -> BlockSolution:
    """QAOA on one block: build the cost, optimize angles, sample, repair, score."""
    cost = build_cost(block, config.cost, encoding or config.encoding, config.penalty)
    noise = (config.depolarizing_p, config.amplitude_damping_gamma) if config.noisy else None
    sim = make_simulator(cost, config.device, noise)
    angles = optimize_angles(
        sim,
        config.p,
        init=config.init if init is None else init,
        optimizer=config.optimizer,
        maxiter=config.maxiter,
        cvar_alpha=config.cvar_alpha,
        ramp_angles=config.ramp,
        learning_rate=config.learning_rate,
    )
    probs = sim.probabilities(angles.gammas, angles.betas)
    basis = np.unique(sample_basis(probs, config.shots, rng))
    tuples = np.unique(block.tuple_index(cost.options[basis]))
    options = block.tuple_options(tuples)
    rewards = cost.reward_table[tuples] if cost.reward_table is not None else block.rewards(options)
    return BlockSolution(cost, angles, probs, options, rewards, sim.forward_passes)


def make_simulator(cost: BlockCost, device: str, noise: tuple[float, float] | None = None) -> Any:
    """The QAOA simulator of ``cost`` on ``device`` (numpy, or a PennyLane circuit).

    Both expose ``cost``, ``probabilities``, ``expectation`` and ``value_and_grad`` on
    the normalized cost; the PennyLane circuit's cost layer is the QUBO's Ising
    Hamiltonian in ``qubo`` mode, the Pauli-Z expansion of the diagonal in ``exact``.
    With ``noise = (depolarizing_p, amplitude_damping_gamma)`` the numpy path is the
    density matrix of :mod:`agents.qaoa.noise` and PennyLane runs ``default.mixed``.
    """
    if device == "numpy":
        if noise is not None:
            from agents.qaoa.noise import DensityMatrixQAOA

            return DensityMatrixQAOA(cost.normalized, *noise)
        from agents.qaoa.simulator import StateVectorQAOA

        return StateVectorQAOA(cost.normalized)
    from agents.qaoa.circuit import PennyLaneQAOA

    hamiltonian = None
    if cost.qubo is not None:
        hamiltonian = cost.qubo.to_pennylane(cost.shift, cost.scale)
    return PennyLaneQAOA(cost.normalized, device, hamiltonian, noise)


class QAOAAgent(AssignmentAgent):
    """QAOA on ``info["problem"]`` (module docstring; options in :class:`QAOAConfig`).

    Parameters
    ----------
    env : gymnasium.Env
        A qfl_gym environment.
    seed : int, optional
        Seeds the shuffling of BCD blocks and the shot sampling.
    **options
        Fields of :class:`QAOAConfig`; an unknown name lists the valid ones.
    """

    name = "qaoa"
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, env: Any, seed: int | None = None, **options: Any) -> None:
        merged = {**self.default_options, **options}
        check_field_names(QAOAConfig, merged, caller="QAOAAgent.__init__")
        self.config = QAOAConfig(**merged)
        super().__init__(env, seed)
        c = self.codec
        self.layout = plan_layout(self.config, c.num_devices, c.num_subchannels, c.num_power_levels)

    def solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # small matrices: BLAS threads only add overhead
            return self._solve(problem, stats)

    def _solve(self, problem: AllocationProblem, stats: dict[str, Any]):
        cfg, layout = self.config, self.layout
        K, L = problem.num_devices, problem.num_power_levels
        stats.update(
            depth=cfg.p,
            qubits=0,
            shots=0,
            circuit_executions=0,
            blocks=0,
            objective_evaluations=0,
            cost=cfg.cost,
        )
        state: dict[str, Any] = {"angles": None, "last": None}

        def solver(block: Block):
            init = state["angles"] if cfg.warm_start else None
            sol = solve_block(block, cfg, self.rng, layout.encodings[block.variables], init)
            state["last"] = sol
            if cfg.warm_start and isinstance(cfg.init, str):
                state["angles"] = (sol.angles.gammas, sol.angles.betas)
            stats["qubits"] = max(stats["qubits"], sol.cost.num_qubits)
            stats["shots"] += cfg.shots
            stats["circuit_executions"] += sol.circuit_executions
            stats["blocks"] += 1
            stats["objective_evaluations"] += sol.cost.objective_evaluations + (
                0 if sol.cost.reward_table is not None else len(sol.rewards)
            )
            return sol.options, sol.rewards

        if layout.single:
            # every device is in the block; the greedy incumbent only anchors the
            # separable surrogate of a minimum over devices (agents.qaoa.block)
            block = Block(
                problem, balanced_strongest(problem.gains), np.full(K, L - 1), np.arange(K), "joint"
            )
            options, rewards = solver(block)
            j = int(np.argmax(rewards))
            channels, levels = (a[0] for a in block.assignments(options[j : j + 1]))
            sol = state["last"]
            if sol.cost.reward_table is not None:
                values = sol.cost.reward_table[block.tuple_index(sol.cost.options)]
                stats["expected_objective"] = float(sol.probabilities @ values)
                stats["uniform_objective"] = float(values.mean())
            stats.update(mode="single", sweeps=0, objective=float(rewards[j]))
            return channels, levels
        result = block_coordinate_descent(
            problem,
            solver,
            channels=balanced_strongest(problem.gains),
            levels=np.full(K, L - 1),
            block_size=layout.block_size,
            schedule=layout.schedule,
            max_sweeps=cfg.max_sweeps,
            rng=self.rng,
        )
        stats["objective_evaluations"] += 1
        stats.update(
            mode="bcd", sweeps=result.sweeps, objective=result.reward, bcd_trace=result.trace
        )
        return result.channels, result.levels


class QuboQAOAAgent(QAOAAgent):
    """``qaoa`` with ``cost="qubo"``: the QUBO (hardware/annealer) formulation."""

    name = "qaoa-qubo"
    default_options: ClassVar[dict[str, Any]] = {"cost": "qubo"}
