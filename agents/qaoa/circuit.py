r"""The QAOA circuit in PennyLane: the reference (and hardware-style) path.

The circuit is ``qml.Hadamard`` on every wire, then ``p`` times
``qml.qaoa.cost_layer(gamma_l, H_C)`` and
``qml.qaoa.mixer_layer(beta_l, qml.qaoa.x_mixer(wires))``, i.e.
``e^{-i beta_l sum_q X_q} e^{-i gamma_l H_C}``: the circuit that
:class:`~agents.qaoa.simulator.StateVectorQAOA` simulates directly (a test checks
that both give the same expectation values for the same angles).

``H_C`` is a sum of Pauli-Z products:

- ``qubo`` mode: the Ising form of the QUBO (:meth:`agents.qaoa.qubo.QUBO.to_pennylane`),
  ``O(n^2)`` terms, what an annealer or gate-based device runs;
- ``exact`` mode: the Walsh-Hadamard expansion of the cost diagonal,
  ``C(x) = sum_S c_S prod_{q in S} Z_q`` with ``c = H^{(x)n} C / 2^n`` (up to ``2^n``
  terms; :func:`diagonal_hamiltonian`). Exact but slow beyond ~10 qubits: this path
  exists for verification and for running the identical circuit on PennyLane
  devices, not for speed.

Devices and gradients: ``default.qubit`` reads ``qml.probs`` with backpropagation
(autograd); ``lightning.qubit`` reads ``qml.expval`` of a diagonal
``qml.SparseHamiltonian`` with adjoint differentiation. The measured diagonal is the
cost for the expectation objective, or the CVaR weights of
:mod:`agents.qaoa.angles`, so both devices serve both objectives.
Samples are drawn by the agent from the circuit's exact probabilities with its own
seeded generator, as on the numpy path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PENNYLANE_DEVICES = ("default.qubit", "lightning.qubit", "default.mixed")


def walsh_coefficients(diag: np.ndarray) -> np.ndarray:
    """``c_S`` with ``diag[x] = sum_S c_S prod_{q in S} (-1)^{x_q}`` (fast WHT).

    Index ``S`` uses the basis-index convention: bit ``n-1-q`` of ``S`` is qubit ``q``.
    """
    c = np.asarray(diag, dtype=float).copy()
    n = c.size.bit_length() - 1
    h = 1
    for _ in range(n):
        c = c.reshape(-1, 2, h)
        c = np.stack([c[:, 0] + c[:, 1], c[:, 0] - c[:, 1]], axis=1).reshape(-1)
        h *= 2
    return c / c.size


def diagonal_hamiltonian(diag: np.ndarray, tol: float = 1e-12) -> Any:
    """PennyLane Hamiltonian with the given diagonal (Pauli-Z expansion)."""
    import pennylane as qml

    coeffs = walsh_coefficients(diag)
    n = coeffs.size.bit_length() - 1
    keep = np.flatnonzero(np.abs(coeffs) > tol * max(1.0, np.abs(coeffs).max()))
    terms, ops = [], []
    for S in keep:
        wires = [q for q in range(n) if (int(S) >> (n - 1 - q)) & 1]
        terms.append(float(coeffs[S]))
        ops.append(qml.prod(*[qml.Z(w) for w in wires]) if wires else qml.Identity(0))
    return qml.Hamiltonian(terms, ops)


def _split_identity(hamiltonian: Any) -> tuple[float, Any]:
    """``(constant, H without the identity term)`` of a Pauli-Z Hamiltonian."""
    import pennylane as qml

    sentence = hamiltonian.pauli_rep
    if sentence is None:
        raise ValueError("the cost Hamiltonian must be a sum of Pauli words")
    const, coeffs, ops = 0.0, [], []
    for word, coeff in sentence.items():
        if len(word) == 0:
            const += float(np.real(coeff))
        elif abs(coeff) > 0:
            coeffs.append(float(np.real(coeff)))
            ops.append(word.operation())
    return const, qml.Hamiltonian(coeffs, ops)


class PennyLaneQAOA:
    """QAOA circuit on a PennyLane device with the interface of ``StateVectorQAOA``.

    Parameters
    ----------
    cost : ndarray, shape (2^n,)
        Diagonal of the (normalized) cost; used for probabilities-based objectives.
    device : {"default.qubit", "lightning.qubit"}
    hamiltonian : pennylane Operator, optional
        ``H_C`` with diagonal ``cost``; default :func:`diagonal_hamiltonian` of ``cost``.
    noise : (depolarizing_p, amplitude_damping_gamma), optional
        Gate-layer noise (:mod:`agents.qaoa.noise`): ``qml.AmplitudeDamping`` then
        ``qml.DepolarizingChannel`` on every wire after the Hadamards, each cost layer
        and each mixer layer; needs ``device="default.mixed"``.
    """

    def __init__(
        self,
        cost: np.ndarray,
        device: str = "default.qubit",
        hamiltonian: Any = None,
        noise: tuple[float, float] | None = None,
    ) -> None:
        import pennylane as qml

        if device not in PENNYLANE_DEVICES:
            raise ValueError(
                f"unknown PennyLane device {device!r}; valid: {', '.join(PENNYLANE_DEVICES)}"
            )
        p_dep, g_amp = (0.0, 0.0) if noise is None else (float(v) for v in noise)
        noisy = p_dep > 0 or g_amp > 0
        if noisy and device != "default.mixed":
            raise ValueError(
                f"noise channels need the mixed-state device 'default.mixed', got {device!r}"
            )
        self.cost = np.asarray(cost, dtype=float).reshape(-1)
        n = self.cost.size.bit_length() - 1
        self.num_qubits = n
        self.device_name = device
        H = diagonal_hamiltonian(self.cost) if hamiltonian is None else hamiltonian
        self.constant, self.hamiltonian = _split_identity(H)
        self.forward_passes = 0
        wires = list(range(n))
        dev = qml.device(device, wires=n)
        mixer = qml.qaoa.x_mixer(wires)
        H_c = self.hamiltonian

        def noise_layer():
            if not noisy:
                return
            for w in wires:
                if g_amp > 0:
                    qml.AmplitudeDamping(g_amp, wires=w)
                if p_dep > 0:
                    qml.DepolarizingChannel(p_dep, wires=w)

        def layers(params):
            p = params.shape[0] // 2
            for w in wires:
                qml.Hadamard(w)
            noise_layer()
            for layer in range(p):
                if len(H_c.terms()[0]):
                    qml.qaoa.cost_layer(params[layer], H_c)
                noise_layer()
                qml.qaoa.mixer_layer(params[p + layer], mixer)
                noise_layer()

        @qml.qnode(dev, diff_method="best" if device != "lightning.qubit" else None)
        def probs(params):
            layers(params)
            return qml.probs(wires=wires)

        self._probs = probs
        if device == "lightning.qubit":
            self._observable = None

            @qml.qnode(dev, diff_method="adjoint")
            def weighted(params):
                layers(params)
                return qml.expval(self._observable)

            self._weighted = weighted

    def probabilities(self, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        params = np.concatenate([np.atleast_1d(gammas), np.atleast_1d(betas)]).astype(float)
        self.forward_passes += 1
        return np.asarray(self._probs(params), dtype=float)

    def expectation(self, gammas: np.ndarray, betas: np.ndarray) -> float:
        return float(self.probabilities(gammas, betas) @ self.cost)

    def value_and_grad(
        self,
        gammas: np.ndarray,
        betas: np.ndarray,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """As :meth:`StateVectorQAOA.value_and_grad`, by PennyLane differentiation."""
        import pennylane as qml
        from pennylane import numpy as pnp

        gammas = np.atleast_1d(np.asarray(gammas, dtype=float))
        p = gammas.size
        params = pnp.array(
            np.concatenate([gammas, np.atleast_1d(betas)]).astype(float), requires_grad=True
        )
        self.forward_passes += 1
        if self.device_name == "lightning.qubit":
            import scipy.sparse

            if objective is None:
                weights = self.cost
            else:
                _, weights = objective(self.probabilities(gammas, betas))
            wires = range(self.num_qubits)
            self._observable = qml.SparseHamiltonian(
                scipy.sparse.diags(np.asarray(weights, dtype=float), format="csr"), wires
            )
            grad = np.asarray(qml.grad(self._weighted)(params), dtype=float)
            if objective is None:
                value = float(self._weighted(params))
            else:
                value = objective(self.probabilities(gammas, betas))[0]
            return value, grad[:p], grad[p:]
        probs = np.asarray(self._probs(params), dtype=float)
        if objective is None:
            value, weights = float(probs @ self.cost), self.cost
        else:
            value, weights = objective(probs)
        w = np.asarray(weights, dtype=float)
        grad = np.asarray(qml.grad(lambda x: pnp.dot(self._probs(x), w))(params), dtype=float)
        return value, grad[:p], grad[p:]
