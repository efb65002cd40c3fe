r"""A fast state-vector simulator of QAOA with a diagonal cost, with adjoint gradients.

The circuit is the standard QAOA (Farhi, Goldstone, Gutmann 2014) on ``n`` qubits:

.. math::

    |\psi(\gamma, \beta)\rangle = \prod_{l=1}^{p} e^{-i \beta_l B} e^{-i \gamma_l C}
        |+\rangle^{\otimes n}, \qquad B = \sum_q X_q,

with ``C`` diagonal (the normalized block cost). It is the circuit
``qml.qaoa.cost_layer(gamma, H_C); qml.qaoa.mixer_layer(beta, x_mixer)`` of
:mod:`agents.qaoa.circuit`, and the two agree to 1e-10 (a test checks it).

Implementation
--------------
- Cost layer: elementwise ``psi *= exp(-i gamma c)``.
- Mixer: ``e^{-i beta B} = RX(2 beta)^{\otimes n}`` factorizes over groups of at most
  :data:`GROUP_QUBITS` qubits; each group's ``2^g x 2^g`` matrix (entries
  ``cos(beta)^(g-d) (-i sin beta)^d`` with ``d`` the Hamming distance) is applied by one
  batched matrix product on the state reshaped to ``(left, 2^g, right)``.
- Gradients by the adjoint method: one forward pass, then one backward pass that
  un-computes the state and carries ``lambda = O psi``; ``dE/dtheta = 2 Re <lambda|
  dU/dtheta ...>`` with ``dU_C/dgamma = -i C U_C`` and ``dU_B/dbeta = -i B U_B``.
  Cost: about three forward passes for all ``2p`` angles.
- Observables are diagonal: ``C`` itself (the expectation) or the CVaR weights of
  :mod:`agents.qaoa.angles`.

Everything is complex128 numpy (``benchmarks/bench_agents.py`` times a decision).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

GROUP_QUBITS = 4
MAX_QUBITS = 24


@lru_cache(maxsize=32)
def _hamming(g: int) -> np.ndarray:
    """Hamming distance between all pairs of ``g``-bit integers, (2^g, 2^g)."""
    x = np.arange(2**g)
    d = np.zeros((2**g, 2**g), dtype=np.int64)
    v = x[:, None] ^ x[None, :]
    for _ in range(g):
        d += v & 1
        v = v >> 1
    d.flags.writeable = False
    return d


def _groups(n: int) -> list[int]:
    """Split ``n`` qubits into near-equal groups of at most GROUP_QUBITS."""
    if n == 0:
        return []
    k = -(-n // GROUP_QUBITS)
    base, extra = divmod(n, k)
    return [base + (i < extra) for i in range(k)]


class StateVectorQAOA:
    """QAOA on ``n`` qubits with diagonal cost ``cost`` (shape (2^n,)).

    Parameters
    ----------
    cost : ndarray, shape (2^n,)
        Diagonal of ``C`` (real), basis index with wire 0 most significant.
    """

    def __init__(self, cost: np.ndarray) -> None:
        cost = np.asarray(cost, dtype=float).reshape(-1)
        n = int(cost.size).bit_length() - 1
        if cost.size != 2**n:
            raise ValueError(f"cost must have 2^n entries, got {cost.size}")
        if n > MAX_QUBITS:
            raise ValueError(f"at most {MAX_QUBITS} qubits can be simulated, got {n}")
        self.cost = cost
        self.num_qubits = n
        self.groups = _groups(n)
        # (left, 2^g, right) shapes of each group, left-to-right (wire 0 first)
        self._shapes = []
        done = 0
        for g in self.groups:
            self._shapes.append((2**done, 2**g, 2 ** (n - done - g)))
            done += g
        self._adjacency = [(_hamming(g) == 1).astype(float) for g in self.groups]
        self.forward_passes = 0

    # ------------------------------------------------------------- layers
    def _mixer_matrices(self, beta: float) -> list[np.ndarray]:
        c, s = np.cos(beta), -1j * np.sin(beta)
        mats = []
        for g in self.groups:
            powers = c ** np.arange(g, -1, -1) * s ** np.arange(g + 1)
            mats.append(powers[_hamming(g)])
        return mats

    def _apply(self, psi: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        for (left, dim, right), U in zip(self._shapes, mats, strict=True):
            psi = np.matmul(U, psi.reshape(left, dim, right))
        return psi.reshape(-1)

    def _apply_b(self, psi: np.ndarray) -> np.ndarray:
        """``B psi`` with ``B = sum_q X_q``."""
        out = np.zeros_like(psi)
        for (left, dim, right), A in zip(self._shapes, self._adjacency, strict=True):
            out += np.matmul(A, psi.reshape(left, dim, right)).reshape(-1)
        return out

    def initial_state(self) -> np.ndarray:
        n = self.num_qubits
        return np.full(2**n, 2.0 ** (-n / 2), dtype=complex)

    def state(self, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """The QAOA state for angles ``gammas, betas`` (each shape (p,))."""
        psi = self.initial_state()
        for gamma, beta in zip(np.atleast_1d(gammas), np.atleast_1d(betas), strict=True):
            psi = psi * np.exp(-1j * gamma * self.cost)
            psi = self._apply(psi, self._mixer_matrices(beta))
        self.forward_passes += 1
        return psi

    def probabilities(self, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """Born probabilities of every basis state."""
        psi = self.state(gammas, betas)
        return psi.real**2 + psi.imag**2

    def expectation(self, gammas: np.ndarray, betas: np.ndarray) -> float:
        """``<psi|C|psi>``."""
        return float(self.probabilities(gammas, betas) @ self.cost)

    def value_and_grad(
        self,
        gammas: np.ndarray,
        betas: np.ndarray,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Objective value and its gradients w.r.t. ``gammas`` and ``betas``.

        Parameters
        ----------
        objective : callable, optional
            ``probabilities (2^n,) -> (value, weights (2^n,))`` where ``weights`` is the
            derivative of the value w.r.t. the probabilities (a diagonal observable).
            Default: the expectation of ``C`` (``weights = C``).

        Returns
        -------
        value, dvalue/dgammas (p,), dvalue/dbetas (p,)
        """
        gammas = np.atleast_1d(np.asarray(gammas, dtype=float))
        betas = np.atleast_1d(np.asarray(betas, dtype=float))
        psi = self.state(gammas, betas)
        probs = psi.real**2 + psi.imag**2
        if objective is None:
            value, weights = float(probs @ self.cost), self.cost
        else:
            value, weights = objective(probs)
        lam = weights * psi
        p = gammas.size
        d_gamma = np.empty(p)
        d_beta = np.empty(p)
        for layer in range(p - 1, -1, -1):
            # psi = U_B phi: dE/dbeta = 2 Re <lam| -i B psi>
            d_beta[layer] = 2.0 * np.vdot(lam, self._apply_b(psi)).imag
            inverse = self._mixer_matrices(-betas[layer])
            psi = self._apply(psi, inverse)
            lam = self._apply(lam, inverse)
            # phi = U_C psi_prev: dE/dgamma = 2 Re <lam| -i C phi>
            d_gamma[layer] = 2.0 * np.vdot(lam, self.cost * psi).imag
            phase = np.exp(1j * gammas[layer] * self.cost)
            psi = psi * phase
            lam = lam * phase
        return value, d_gamma, d_beta
