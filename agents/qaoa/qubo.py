r"""Cost functions (diagonal Hamiltonians) of a block's qubits: ``exact`` and ``qubo``.

QAOA minimizes an *energy* ``E(x)`` over basis states ``x``; for a feasible ``x`` it is
minus the objective, the env's reward in Mbit/s
(:meth:`~qfl_gym.wireless.problem.AllocationProblem.reward`; equal to the sum rate
unless the scenario prices energy or outage).

``exact``
    ``E(x) = -reward(a(x))``: the true reward of the option tuple ``a(x)`` of every
    bitstring, from :meth:`~agents.qaoa.block.Block.reward_table` (practical to about
    20 qubits). Its classical cost is that of exhaustive search over the block: use it
    to study QAOA on the true landscape. With one-hot encoding an infeasible ``x``
    scores ``-reward(repair(x)) + A V(x)`` with ``A = max - min`` of the feasible
    rewards plus a margin, so every infeasible bitstring is worse than every feasible
    one.
``qubo``
    The quadratic model: the pairwise reward model of
    :meth:`~agents.qaoa.block.Block.pairwise_model` (of the configured objective's
    per-device terms; for ``round-time``, whose minimum over devices no QUBO carries, of
    its separable surrogate, see :mod:`agents.qaoa.block`) on one-hot variables
    ``x_{i,a}`` (device ``i`` takes option ``a``), plus the one-hot penalty,

    .. math::

        E(x) = -\Big(c + \sum_{i,a} \Delta_i(a) x_{ia}
               + \sum_{i<j} \sum_{a,b} \Delta_{ij}(a,b)\, x_{ia} x_{jb}\Big)
               + A \sum_i \Big(1 - \sum_a x_{ia}\Big)^2 .

    It needs only ``O(m^2 M^2 / N)`` reward evaluations, is exact for blocks of one
    device, and is a :class:`dimod.BinaryQuadraticModel` (:meth:`QUBO.to_bqm`) or an
    Ising Hamiltonian (:meth:`QUBO.to_pennylane`), so it runs on annealers and
    hardware. Binary encoding is not offered: there the interaction of two devices is
    a polynomial of degree ``2 log2 M`` in the bits.

Penalty scaling (automatic)
---------------------------
Let ``C(x) = sum_q h_q x_q + sum_{q<r} J_qr x_q x_r`` be the QUBO without constant and
penalty (``h = -Delta_i``, ``J = -Delta_ij``) and ``t_i`` the number of qubits set for
device ``i``. The penalty ``A`` must make every infeasible energy exceed every
feasible one. Bounds:

- every feasible ``x``: ``C(x) <= U = sum_i max_a h_ia + sum_{i<j} max_{a,b} J_{ia,jb}``;
- every ``x``: ``C(x) >= sum_i H_i(t_i) + J^-``, with ``H_i(t)`` the sum of device
  ``i``'s ``t`` smallest ``h`` and ``J^-`` the sum of the negative couplings.

With ``G = U - sum_i H_i(1) - J^-`` it suffices that each violating device alone
costs more than ``G``: ``A > G + H_i(1)`` (no qubit set) and
``A (t - 1)^2 > G - (H_i(t) - H_i(1))`` (``t >= 2`` set), for every ``i``. ``A`` is
the largest of these right-hand sides plus 0.1%: about the spread of the feasible
energies, far tighter than the textbook ``sum |h| + sum |J|``. ``penalty=``
overrides ``A`` (Mbit/s); the guarantee then no longer holds.

Normalization
-------------
QAOA angles are only transferable between instances if the cost has a fixed scale.
:attr:`BlockCost.normalized` is ``(E - mean) / std`` over the feasible basis states, so
the feasible landscape has zero mean and unit standard deviation on every instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.qaoa.block import Block, PairwiseModel
from agents.qaoa.encoding import Encoding, default_encoding
from qfl_gym.validation import check_choice

COST_MODES = ("exact", "qubo")
PENALTY_MARGIN = 1e-3


@dataclass(frozen=True, eq=False)
class QUBO:
    """``E(x) = offset + sum_q linear_q x_q + sum_{q<r} quadratic_qr x_q x_r``.

    Attributes
    ----------
    linear : ndarray, shape (n,)
    quadratic : ndarray, shape (n, n)
        Strictly upper triangular.
    offset : float
    labels : list of tuple
        ``(device, sub-channel, level)`` of each variable, in qubit order.
    penalty : float
        The one-hot penalty weight ``A`` (Mbit/s).
    """

    linear: np.ndarray
    quadratic: np.ndarray
    offset: float
    labels: list
    penalty: float

    @property
    def num_variables(self) -> int:
        return int(self.linear.size)

    def energies(self, bits: np.ndarray) -> np.ndarray:
        """Energies of qubit values ``(S, n)``, shape (S,)."""
        x = np.asarray(bits, dtype=float)
        return self.offset + x @ self.linear + np.einsum("sq,qr,sr->s", x, self.quadratic, x)

    def to_bqm(self) -> Any:
        """The QUBO as a ``dimod.BinaryQuadraticModel`` (``BINARY``) on :attr:`labels`."""
        import dimod

        lab = self.labels
        r, c = np.nonzero(self.quadratic)
        return dimod.BinaryQuadraticModel(
            {lab[q]: float(v) for q, v in enumerate(self.linear)},
            {(lab[i], lab[j]): float(self.quadratic[i, j]) for i, j in zip(r, c, strict=True)},
            float(self.offset),
            dimod.BINARY,
        )

    def to_ising(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(h, J, offset)`` with ``E = offset + sum h_q Z_q + sum_{q<r} J_qr Z_q Z_r``.

        ``Z_q`` is the Pauli-Z eigenvalue of qubit ``q``: ``x_q = (1 - Z_q) / 2``, so
        ``|1>`` means "variable set" (PennyLane's and Qiskit's convention).
        """
        Q = self.quadratic
        h = -self.linear / 2 - (Q.sum(axis=1) + Q.sum(axis=0)) / 4
        offset = self.offset + self.linear.sum() / 2 + Q.sum() / 4
        return h, Q / 4, float(offset)

    def to_pennylane(self, shift: float = 0.0, scale: float = 1.0) -> Any:
        """The Ising form of ``(E - shift) / scale`` as a PennyLane Hamiltonian.

        Wires ``0 .. n-1`` are the variables in :attr:`labels` order; ``shift`` and
        ``scale`` give the normalized cost (:attr:`BlockCost.normalized`).
        """
        import pennylane as qml

        h, J, offset = self.to_ising()
        coeffs, ops = [(offset - shift) / scale], [qml.Identity(0)]
        for q in np.flatnonzero(h):
            coeffs.append(float(h[q]) / scale)
            ops.append(qml.Z(int(q)))
        for q, r in zip(*np.nonzero(J), strict=True):
            coeffs.append(float(J[q, r]) / scale)
            ops.append(qml.Z(int(q)) @ qml.Z(int(r)))
        return qml.Hamiltonian(coeffs, ops)


def automatic_penalty(model: PairwiseModel) -> float:
    """Smallest ``A`` of the bound in the module docstring, plus a 0.1% margin (Mbit/s)."""
    h = -model.single  # (m, M)
    J = -model.pair  # (m, M, m, M), symmetric, zero within a device
    m, M = h.shape
    upper = h.max(axis=1).sum() + sum(
        J[i, :, j, :].max() for i in range(m) for j in range(i + 1, m)
    )
    pairs_lower = np.minimum(J, 0).sum() / 2
    # H[i, t]: the t smallest linear terms of device i summed (t bits set)
    H = np.concatenate([np.zeros((m, 1)), np.cumsum(np.sort(h, axis=1), axis=1)], axis=1)
    gap = max(upper - H[:, 1].sum() - pairs_lower, 0.0)
    need = [gap + H[:, 1]]  # a device with no bit set
    for t in range(2, M + 1):  # a device with t bits set
        need.append((gap - (H[:, t] - H[:, 1])) / (t - 1) ** 2)
    A = max(float(np.max(need)), 0.0)
    return A * (1 + PENALTY_MARGIN) + PENALTY_MARGIN * float(np.abs(h).max(initial=0)) + 1e-9


def build_qubo(
    block: Block, model: PairwiseModel | None = None, penalty: float | None = None
) -> QUBO:
    """The ``qubo``-mode QUBO of ``block`` in one-hot encoding (module docstring)."""
    model = block.pairwise_model() if model is None else model
    m, M = model.single.shape
    n = m * M
    h = -model.single.reshape(n)
    J = -model.pair.reshape(n, n)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    J = np.where(upper, J, 0.0)
    if penalty is None:
        penalty = automatic_penalty(model)
    elif not (np.isfinite(penalty) and penalty > 0):
        raise ValueError(f"penalty must be a positive number (Mbit/s), got {penalty!r}")
    A = float(penalty)
    # A (1 - sum_a x_a)^2 = A (1 - sum_a x_a + 2 sum_{a<b} x_a x_b)
    linear = h - A
    quadratic = J.copy()
    for i in range(m):
        s = slice(i * M, (i + 1) * M)
        quadratic[s, s] += 2 * A * np.triu(np.ones((M, M)), k=1)
    labels = [
        (int(block.devices[i]), int(block.option_channels[i, a]), int(block.option_levels[i, a]))
        for i in range(m)
        for a in range(M)
    ]
    return QUBO(linear, quadratic, -model.constant + A * m, labels, A)


@dataclass(frozen=True, eq=False)
class BlockCost:
    """Energies of every basis state of a block's qubits, and how to read them.

    Attributes
    ----------
    mode : {"exact", "qubo"}
    block : Block
    encoding : Encoding
    energies : ndarray, shape (2^n,)
        ``E(x)`` in Mbit/s (module docstring).
    options : ndarray, shape (2^n, m)
        Option tuple of each basis state (repaired if infeasible).
    feasible : ndarray of bool, shape (2^n,)
    shift, scale : float
        Mean and standard deviation of the feasible energies.
    penalty : float
        One-hot penalty ``A`` (0 for binary encoding).
    qubo : QUBO or None
        The quadratic model (``qubo`` mode).
    reward_table : ndarray or None
        Exact reward of every option tuple (``exact`` mode).
    objective_evaluations : int
        Reward evaluations spent building the cost (sub-channel cases for ``exact``,
        single and pair terms for ``qubo``).
    """

    mode: str
    block: Block
    encoding: Encoding
    energies: np.ndarray
    options: np.ndarray
    feasible: np.ndarray
    shift: float
    scale: float
    penalty: float
    qubo: QUBO | None
    reward_table: np.ndarray | None
    objective_evaluations: int

    @property
    def num_qubits(self) -> int:
        return self.encoding.num_qubits

    @property
    def normalized(self) -> np.ndarray:
        """``(E - shift) / scale``: unit-variance feasible landscape (module docstring)."""
        return (self.energies - self.shift) / self.scale

    def option_scores(self) -> np.ndarray:
        """Repair preferences (m, M): each option's stand-alone reward."""
        return option_scores(self.block)


def option_scores(block: Block) -> np.ndarray:
    """Stand-alone model reward ``Delta_i(a)`` of every option (m, M)."""
    m, M = block.num_devices, block.num_options
    out = np.zeros((m, M))
    for n in range(block.problem.num_subchannels):
        on = block.option_channels == n
        ii, aa = np.nonzero(on)
        if ii.size == 0:
            continue
        st = np.zeros((ii.size, m), dtype=np.int64)
        st[np.arange(ii.size), ii] = 1 + block.option_levels[ii, aa]
        base = block.model_channel_rewards(n, np.zeros((1, m)))[0]
        out[ii, aa] = block.model_channel_rewards(n, st) - base
    return out


def build_cost(
    block: Block,
    mode: str = "exact",
    encoding: str | None = None,
    penalty: float | None = None,
) -> BlockCost:
    """The :class:`BlockCost` of ``block`` (module docstring).

    Parameters
    ----------
    block : Block
    mode : {"exact", "qubo"}
    encoding : {"binary", "one-hot"}, optional
        Default: binary when the number of options is a power of two, else one-hot;
        ``qubo`` mode is always one-hot.
    penalty : float, optional
        Override of the automatic one-hot penalty ``A`` (Mbit/s).
    """
    check_choice("cost", mode, COST_MODES)
    M = block.num_options
    if encoding is None:
        encoding = "one-hot" if mode == "qubo" else default_encoding(M)
    if mode == "qubo" and encoding != "one-hot":
        raise ValueError(
            f"cost='qubo' needs encoding='one-hot', got {encoding!r}: with binary encoding "
            "the interaction of two devices is a polynomial of degree 2*log2(M) in the bits, "
            "not a quadratic"
        )
    enc = Encoding(encoding, block.num_devices, M)
    scores = option_scores(block) if enc.is_one_hot else None
    options, violations = enc.all_states(scores)
    feasible = violations == 0
    qubo = table = None
    A = 0.0
    if mode == "exact":
        table = block.reward_table()
        energies = -table[block.tuple_index(options)]
        evaluations = block.num_tuples
        if enc.is_one_hot:
            spread = float(table.max() - table.min())
            A = spread * (1 + PENALTY_MARGIN) + PENALTY_MARGIN * float(np.abs(table).max()) + 1e-9
            if penalty is not None:
                A = float(penalty)
            energies = energies + A * violations
    else:
        model = block.pairwise_model()
        qubo = build_qubo(block, model, penalty)
        A = qubo.penalty
        energies = qubo.energies(enc.bits(np.arange(2**enc.num_qubits)))
        evaluations = int(
            (model.single != 0).sum()
            + (np.triu(model.pair.reshape(enc.num_qubits, -1), 1) != 0).sum()
        )
    fe = energies[feasible]
    shift = float(fe.mean())
    scale = float(fe.std())
    if not scale > 1e-12 * max(1.0, abs(shift)):
        scale = 1.0
    return BlockCost(
        mode, block, enc, energies, options, feasible, shift, scale, A, qubo, table, evaluations
    )
