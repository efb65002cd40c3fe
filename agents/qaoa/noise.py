r"""QAOA on noisy hardware: a numpy density-matrix simulator with adjoint gradients.

Noise model (the gate-layer model of :mod:`qfl_gym.learning.noise`, shared with the
VQC): after every *gate layer* each qubit undergoes amplitude damping ``AD(gamma)``
then depolarizing ``DP(p)``. The QAOA circuit's gate layers are the initial Hadamards,
each cost layer ``e^{-i gamma_l C}`` and each mixer layer ``e^{-i beta_l B}``, so the
state is

.. math::

    \rho = \mathcal{N} \mathcal{U}_{B,p} \mathcal{N} \mathcal{U}_{C,p} \cdots
           \mathcal{N} \mathcal{U}_{B,1} \mathcal{N} \mathcal{U}_{C,1}
           \mathcal{N}(|+\rangle\langle+|^{\otimes n}),

with :math:`\mathcal{U}(\rho) = U \rho U^\dagger` and :math:`\mathcal{N}` the channel
on every qubit. One noise layer per cost layer is a compilation-independent,
coarse-grained model: on hardware the cost layer is many two-qubit gates, so ``p``
and ``gamma`` are per *layer* error rates (a calibration maps gate errors and ``T1``
to them). The PennyLane reference (:class:`~agents.qaoa.circuit.PennyLaneQAOA` on
``default.mixed``) runs the same circuit with ``qml.AmplitudeDamping`` and
``qml.DepolarizingChannel``; a test checks that both agree to 1e-8.

Implementation (everything complex128 numpy, ``D = 2^n``):

- cost layer: ``rho_ij *= exp(-i gamma (c_i - c_j))``;
- mixer: the grouped ``RX`` products of :class:`~agents.qaoa.simulator.StateVectorQAOA`
  applied to the rows and (conjugated) to the columns;
- channel: the coherences of all qubits scaled by one table, then per qubit a rank-one
  update of the populations, in place (:func:`qfl_gym.learning.noise.apply_channel_numpy`);
- gradients by the adjoint method for channels: a forward pass stores the state after
  every unitary layer; a backward pass carries the Heisenberg-picture observable
  ``Lambda`` (adjoint channels ``N^dagger``, adjoint unitaries ``U^dagger Lambda U``) and
  reads ``dE/dtheta = 2 Im Tr(Lambda G rho)`` for each layer ``e^{-i theta G}``. Cost:
  about three forward passes for all ``2p`` angles, memory ``2p + 2`` density matrices.

Cost grows as ``4^n`` in memory and time (a state vector: ``2^n``), so
:data:`MAX_NOISY_QUBITS` = 10 (16 MiB per matrix): a noisy block solve costs orders of
magnitude more than the state-vector one (``benchmarks/bench_quantum_noise.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agents.qaoa.simulator import StateVectorQAOA
from qfl_gym.learning.noise import apply_channel_numpy, coherence_table, layer_channel

#: widest block the density-matrix path simulates (memory 16 * 4^n bytes per matrix)
MAX_NOISY_QUBITS = 10


class DensityMatrixQAOA:
    """Noisy QAOA on ``n`` qubits with diagonal cost, the interface of ``StateVectorQAOA``.

    Parameters
    ----------
    cost : ndarray, shape (2^n,)
        Diagonal of ``C`` (real), basis index with wire 0 most significant.
    depolarizing_p, amplitude_damping_gamma : float
        Per-qubit channel strengths after every gate layer, in [0, 1].
    """

    def __init__(
        self, cost: np.ndarray, depolarizing_p: float = 0.0, amplitude_damping_gamma: float = 0.0
    ) -> None:
        self._sv = StateVectorQAOA(cost)
        n = self._sv.num_qubits
        if n > MAX_NOISY_QUBITS:
            raise ValueError(
                f"the density-matrix QAOA simulates at most {MAX_NOISY_QUBITS} qubits "
                f"(memory 16 * 4^n bytes per matrix), got {n}"
            )
        self.cost = self._sv.cost
        self.num_qubits = n
        self.depolarizing_p = float(depolarizing_p)
        self.amplitude_damping_gamma = float(amplitude_damping_gamma)
        self._M, self._s = layer_channel(depolarizing_p, amplitude_damping_gamma)
        self._coherence = coherence_table(n, self._s)
        self.forward_passes = 0

    # ------------------------------------------------------------- layers
    def _noise(self, rho: np.ndarray, adjoint: bool = False) -> np.ndarray:
        return apply_channel_numpy(rho, self.num_qubits, self._M, self._coherence, adjoint)

    def _rows(self, rho: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        """``U rho`` with ``U`` the Kronecker product of the group matrices ``mats``."""
        D = rho.shape[0]
        for (left, dim, right), U in zip(self._sv._shapes, mats, strict=True):
            rho = np.matmul(U, rho.reshape(left, dim, right * D))
        return rho.reshape(D, D)

    def _cols(self, rho: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        """``rho U^T`` (pass conjugated ``mats`` for ``rho U^dagger``)."""
        D = rho.shape[0]
        for (left, dim, right), U in zip(self._sv._shapes, mats, strict=True):
            rho = np.matmul(U, rho.reshape(D * left, dim, right))
        return rho.reshape(D, D)

    def _mixer(self, rho: np.ndarray, beta: float) -> np.ndarray:
        """``e^{-i beta B} rho e^{i beta B}``."""
        mats = self._sv._mixer_matrices(beta)
        return self._cols(self._rows(rho, mats), [m.conj() for m in mats])

    def _apply_b_rows(self, rho: np.ndarray) -> np.ndarray:
        """``B rho`` with ``B = sum_q X_q``."""
        D = rho.shape[0]
        out = np.zeros_like(rho)
        for (left, dim, right), A in zip(self._sv._shapes, self._sv._adjacency, strict=True):
            out += np.matmul(A, rho.reshape(left, dim, right * D)).reshape(D, D)
        return out

    def initial_state(self) -> np.ndarray:
        """The noisy ``|+><+|^n`` after the Hadamard layer's channel (a product state)."""
        M, s = self._M, self._s
        single = np.array([[M[0].sum() / 2, s / 2], [s / 2, M[1].sum() / 2]], dtype=complex)
        rho = np.ones((1, 1), dtype=complex)
        for _ in range(self.num_qubits):
            rho = np.kron(rho, single)
        return rho

    # ------------------------------------------------------------ forward
    def _forward(
        self, gammas: np.ndarray, betas: np.ndarray, keep: bool
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        rho = self.initial_state()
        stored = []
        for gamma, beta in zip(gammas, betas, strict=True):
            phase = np.exp(-1j * gamma * self.cost)
            rho = rho * np.multiply.outer(phase, phase.conj())
            if keep:
                stored.append(rho.copy())
            rho = self._noise(rho)
            rho = self._mixer(rho, beta)
            if keep:
                stored.append(rho.copy())
            rho = self._noise(rho)
        self.forward_passes += 1
        return rho, stored

    def state(self, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """The noisy QAOA density matrix ``(D, D)`` for angles ``gammas, betas`` (each (p,))."""
        g = np.atleast_1d(np.asarray(gammas, dtype=float))
        b = np.atleast_1d(np.asarray(betas, dtype=float))
        return self._forward(g, b, keep=False)[0]

    def probabilities(self, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """Outcome probabilities of every basis state (the diagonal of the state)."""
        return np.clip(np.diagonal(self.state(gammas, betas)).real, 0.0, None)

    def expectation(self, gammas: np.ndarray, betas: np.ndarray) -> float:
        """``Tr(C rho)``."""
        return float(self.probabilities(gammas, betas) @ self.cost)

    def value_and_grad(
        self,
        gammas: np.ndarray,
        betas: np.ndarray,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Objective value and its gradients w.r.t. ``gammas`` and ``betas``.

        As :meth:`agents.qaoa.simulator.StateVectorQAOA.value_and_grad`: ``objective``
        maps the probabilities to ``(value, weights)`` (a diagonal observable);
        default the expectation of ``C``.
        """
        gammas = np.atleast_1d(np.asarray(gammas, dtype=float))
        betas = np.atleast_1d(np.asarray(betas, dtype=float))
        rho, stored = self._forward(gammas, betas, keep=True)
        probs = np.clip(np.diagonal(rho).real, 0.0, None)
        if objective is None:
            value, weights = float(probs @ self.cost), self.cost
        else:
            value, weights = objective(probs)
        lam = np.diag(np.asarray(weights, dtype=complex))
        p = gammas.size
        d_gamma = np.empty(p)
        d_beta = np.empty(p)
        for layer in range(p - 1, -1, -1):
            lam = self._noise(lam, adjoint=True)
            after_mixer = stored[2 * layer + 1]
            # dE/dbeta = 2 Im Tr(Lambda B rho), Tr(XY) = sum(X * Y.T)
            d_beta[layer] = 2.0 * np.sum(lam * self._apply_b_rows(after_mixer).T).imag
            mats = self._sv._mixer_matrices(betas[layer])  # Lambda -> U^dagger Lambda U
            lam = self._cols(self._rows(lam, [m.conj().T for m in mats]), [m.T for m in mats])
            lam = self._noise(lam, adjoint=True)
            after_cost = stored[2 * layer]
            d_gamma[layer] = 2.0 * np.sum(lam * (self.cost[:, None] * after_cost).T).imag
            phase = np.exp(1j * gammas[layer] * self.cost)
            lam = lam * np.multiply.outer(phase, phase.conj())
        return value, d_gamma, d_beta
