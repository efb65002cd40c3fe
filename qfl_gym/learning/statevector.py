r"""Fast batched torch state-vector simulation of the VQC of :mod:`qfl_gym.learning.model`.

Every device ``k`` has its own parameters ``theta_k`` and its own minibatch, so one
forward/backward pass evaluates the circuits of all K devices on all their samples:
inputs are ``(K, B, D)`` state vectors (``D = 2**n``), parameters ``(K, P)``.

How it stays cheap (the circuits are tiny, so Python and per-op overhead dominate):

- The embedding :math:`\bigotimes_q RX(x_q)|0\rangle` is a product state that does not
  depend on the weights: :meth:`StatevectorVQC.encode` computes it once per dataset.
- The ``Rot`` entries of all devices, layers and qubits are ``exp(i (w @ A)) @ C``: three
  ops (:func:`rot_phase_tables`).
- The gates of a layer are combined into Kronecker-product *block* unitaries of up to
  ``max_block_qubits`` qubits (default 4, i.e. 16 x 16): one gather lays out the factors
  and ``q - 1`` element-wise products multiply them (:func:`kron_gather_table`).
- The ring of CNOTs of a layer is a permutation of basis states.
- With ``n_qubits <= max_block_qubits`` (the presets' ``small``) the permutation is
  folded into the gather, so each layer is one ``D x D`` matrix per device; the layer
  matrices are multiplied and the batch is evolved by one batched matmul. Wider circuits
  apply the block unitaries to the state with ``einsum`` and permute the state
  (memory ``O(K B D)`` instead of ``O(K D^2)``).

complex64 is somewhat faster than complex128 (``benchmarks/bench_qfl.py``); blocks
larger than 4-5 qubits make the backward pass of the Kronecker products much slower.

Wire order follows PennyLane: wire 0 is the most significant bit of the basis index.
Gradients come from torch autograd (exact, "backprop"); the equivalence with
PennyLane's ``default.qubit`` qnode (outputs and gradients within 1e-6 in double
precision) is a test.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from qfl_gym.learning.model import VQCSpec

COMPLEX_OF = {torch.float64: torch.complex128, torch.float32: torch.complex64}


def entangler_permutation(n_qubits: int, shift: int) -> np.ndarray:
    """Basis-state image ``f(i)`` of the CNOT ring ``CNOT(q, (q + shift) mod n)``, q = 0..n-1.

    The CNOTs are applied in order; wire 0 is the most significant bit.
    """
    state = np.arange(2**n_qubits)
    for q in range(n_qubits):
        control = 1 << (n_qubits - 1 - q)
        target = 1 << (n_qubits - 1 - (q + shift) % n_qubits)
        state = np.where(state & control, state ^ target, state)
    return state


def entangler_ranges(n_qubits: int, n_layers: int) -> tuple[int, ...]:
    """PennyLane's default StronglyEntanglingLayers ranges ``r_l = l mod (n-1) + 1``."""
    return tuple((layer % (n_qubits - 1)) + 1 for layer in range(n_layers))


def z_signs(n_qubits: int, num_measured: int) -> np.ndarray:
    """``(D, m)`` eigenvalues of ``Z_q`` on every basis state, q < m (wire 0 = MSB)."""
    idx = np.arange(2**n_qubits)[:, None]
    bits = (idx >> (n_qubits - 1 - np.arange(num_measured))[None, :]) & 1
    return 1.0 - 2.0 * bits


def rot_phase_tables() -> tuple[np.ndarray, np.ndarray]:
    r"""Constant tables writing ``Rot(phi, theta, omega)`` as sums of phases.

    With :math:`\alpha = \theta/2`, :math:`a = (\phi+\omega)/2`, :math:`d = (\phi-\omega)/2`,

    .. math::

        \mathrm{Rot} = \begin{pmatrix} \cos\alpha\, e^{-ia} & -\sin\alpha\, e^{id} \\
                                       \sin\alpha\, e^{-id} & \cos\alpha\, e^{ia} \end{pmatrix},

    and every entry is a combination of two of the eight phases
    :math:`e^{\pm i(\alpha \pm a)}, e^{\pm i(\alpha \pm d)}`. Returns ``A`` (3, 8), mapping
    ``(phi, theta, omega)`` to the eight phase angles, and ``C`` (8, 4) complex, mapping
    the eight unit phasors to the entries ``(m00, m01, m10, m11)``.
    """
    # phase angles as linear forms in (phi, theta, omega)
    alpha = np.array([0.0, 0.5, 0.0])
    a = np.array([0.5, 0.0, 0.5])
    d = np.array([0.5, 0.0, -0.5])
    forms = [alpha - a, -(alpha - a), alpha + a, -(alpha + a),
             alpha + d, -(alpha + d), alpha - d, -(alpha - d)]  # fmt: skip
    A = np.stack(forms, axis=1)
    C = np.zeros((8, 4), dtype=complex)
    # m00 = cos(alpha) e^{-ia} = (e^{i(alpha-a)} + e^{-i(alpha+a)}) / 2
    C[0, 0], C[3, 0] = 0.5, 0.5
    # m11 = cos(alpha) e^{ia} = (e^{i(alpha+a)} + e^{-i(alpha-a)}) / 2
    C[2, 3], C[1, 3] = 0.5, 0.5
    # m01 = -sin(alpha) e^{id} = (i/2) (e^{i(alpha+d)} - e^{-i(alpha-d)})
    C[4, 1], C[7, 1] = 0.5j, -0.5j
    # m10 = sin(alpha) e^{-id} = (-i/2) (e^{i(alpha-d)} - e^{-i(alpha+d)})
    C[6, 2], C[5, 2] = -0.5j, 0.5j
    return A, C


def kron_gather_table(
    n_qubits: int, n_layers: int, qubits: tuple[int, int], row_perms: np.ndarray | None
) -> np.ndarray:
    """Indices ``(L, q, Db*Db)`` into the flat ``(L, n, 4)`` Rot entries for block kron.

    Entry ``[l, i, r * Db + c]`` is the flat index of ``Rot[l, a + i][bit_i(r'), bit_i(c)]``
    with ``r' = row_perms[l, r]`` (the CNOT ring folded in) or ``r' = r``.
    """
    a, b = qubits
    nb = b - a
    Db = 2**nb
    rows = np.arange(Db)
    layers = []
    for layer in range(n_layers):
        r = rows if row_perms is None else row_perms[layer]
        shift = nb - 1 - np.arange(nb)  # bit of qubit a+i inside the block index (MSB first)
        rbit = (r[None, :, None] >> shift[:, None, None]) & 1  # (nb, Db, 1)
        cbit = (rows[None, None, :] >> shift[:, None, None]) & 1  # (nb, 1, Db)
        qubit = (a + np.arange(nb))[:, None, None]
        flat = (layer * n_qubits + qubit) * 4 + 2 * rbit + cbit  # (nb, Db, Db)
        layers.append(flat.reshape(nb, Db * Db))
    return np.stack(layers)


class StatevectorVQC:
    """Batched state-vector simulator of the VQC for K devices at once.

    Parameters
    ----------
    spec : VQCSpec
        Circuit and readout.
    dtype : torch.dtype
        Real dtype of parameters and angles: ``torch.float64`` (states complex128) or
        ``torch.float32`` (complex64).
    max_block_qubits : int
        Largest number of qubits combined into one block unitary (default 4, the
        fastest on a 2-core CPU: larger Kronecker products make the backward pass
        expensive); circuits up to this width run as one matrix per device.

    Notes
    -----
    Per forward pass the gates cost a handful of torch ops whatever the circuit size:
    the ``Rot`` entries of all devices, layers and qubits are
    ``exp(i (w @ A)) @ C`` (:func:`rot_phase_tables`), one gather lays them out as
    the factors of every block's Kronecker product (with the layer's CNOT permutation
    folded into the rows when the block is the whole register,
    :func:`kron_gather_table`), and ``q - 1`` element-wise products multiply the
    factors.
    """

    def __init__(
        self, spec: VQCSpec, dtype: torch.dtype = torch.float64, max_block_qubits: int = 4
    ) -> None:
        if dtype not in COMPLEX_OF:
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        if max_block_qubits < 1:
            raise ValueError(f"max_block_qubits must be >= 1, got {max_block_qubits}")
        self.spec = spec
        self.dtype = dtype
        self.complex_dtype = COMPLEX_OF[dtype]
        n, L = spec.n_qubits, spec.n_layers
        self.dim = 2**n
        num_blocks = -(-n // max_block_qubits)
        edges = np.linspace(0, n, num_blocks + 1).round().astype(int)
        self.blocks = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        inverse = []
        for r in entangler_ranges(n, L):
            f = entangler_permutation(n, r)
            inv = np.empty_like(f)
            inv[f] = np.arange(f.size)
            inverse.append(inv)
        inverse = np.stack(inverse)  # new_state[j] = old_state[f^-1(j)]
        self._inv_perm = torch.as_tensor(inverse, dtype=torch.long)  # (L, D)
        single = len(self.blocks) == 1
        self._gather = [
            torch.as_tensor(kron_gather_table(n, L, blk, inverse if single else None)).ravel()
            for blk in self.blocks
        ]
        A, C = rot_phase_tables()
        self._phase_forms = torch.as_tensor(A, dtype=dtype)
        self._phase_to_entries = torch.as_tensor(C, dtype=self.complex_dtype)
        self._one = torch.ones((), dtype=dtype)
        self._zsign = torch.as_tensor(z_signs(n, spec.num_measured), dtype=dtype)

    # ---------------------------------------------------------------- inputs
    def encode(self, angles: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Embedded product states ``(M, D)`` of angles ``(M, n)``: ``prod_q RX(x_q)|0>``."""
        x = torch.as_tensor(angles, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.spec.n_qubits:
            raise ValueError(
                f"angles must have shape (M, {self.spec.n_qubits}), got {tuple(x.shape)}"
            )
        c = torch.cos(0.5 * x).to(self.complex_dtype)
        s = torch.sin(0.5 * x).to(self.complex_dtype) * -1j
        psi = torch.stack([c[:, 0], s[:, 0]], dim=-1)
        for q in range(1, self.spec.n_qubits):
            v = torch.stack([c[:, q], s[:, q]], dim=-1)
            psi = (psi[:, :, None] * v[:, None, :]).flatten(1)
        return psi

    # ---------------------------------------------------------------- gates
    def rot_entries(self, params: torch.Tensor) -> torch.Tensor:
        """``Rot`` entries ``(m00, m01, m10, m11)`` of every device, layer, qubit: (K, L, n, 4)."""
        phases = self.spec.rotation_weights(params) @ self._phase_forms
        return torch.polar(self._one, phases) @ self._phase_to_entries

    def rot_matrices(self, params: torch.Tensor) -> torch.Tensor:
        """``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``: ``(K, L, n, 2, 2)``."""
        return self.rot_entries(params).unflatten(-1, (2, 2))

    def block_unitaries(self, params: torch.Tensor) -> list[torch.Tensor]:
        """Per block, the Kronecker product of its Rot gates, ``(K, L, Db, Db)`` each.

        For a single block (``n_qubits <= max_block_qubits``) the layer's CNOT ring is
        included: the result is each device's full layer matrix.
        """
        flat = self.rot_entries(params).flatten(1)  # (K, L*n*4)
        K, L = flat.shape[0], self.spec.n_layers
        out = []
        for (a, b), table in zip(self.blocks, self._gather, strict=True):
            Db = 2 ** (b - a)
            factors = flat.index_select(1, table).view(K, L, b - a, Db * Db).unbind(2)
            G = factors[0]
            for f in factors[1:]:  # chained products: cheaper backward than prod()
                G = G * f
            out.append(G.view(K, L, Db, Db))
        return out

    def layer_unitaries(self, params: torch.Tensor) -> torch.Tensor:
        """Each device's full layer matrices ``(K, L, D, D)``, CNOT ring included."""
        if len(self.blocks) == 1:
            return self.block_unitaries(params)[0]
        D = self.dim
        eye = torch.eye(D, dtype=self.complex_dtype).expand(params.shape[0], D, D)
        cols = self.evolve_layers(params, eye.transpose(1, 2), per_layer=True)
        return torch.stack([c.transpose(-1, -2) for c in cols], dim=1)

    def circuit_unitary(self, params: torch.Tensor) -> torch.Tensor:
        """Each device's circuit unitary after the embedding, ``(K, D, D)``."""
        layers = self.layer_unitaries(params).unbind(1)
        U = layers[0]
        for layer in layers[1:]:
            U = layer @ U
        return U

    # -------------------------------------------------------------- forward
    def evolve_layers(
        self, params: torch.Tensor, states: torch.Tensor, per_layer: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Apply the layers block by block (the path for wide circuits).

        ``states`` (K, B, D); returns the final states, or (``per_layer``) the list of
        states after each layer applied separately to ``states``.
        """
        K, B = states.shape[:2]
        n = self.spec.n_qubits
        gates = self.block_unitaries(params)
        outs = []
        psi = states
        for layer in range(self.spec.n_layers):
            if per_layer:
                psi = states
            for (a, b), G in zip(self.blocks, gates, strict=True):
                view = psi.reshape(K, B, 2**a, 2 ** (b - a), 2 ** (n - b))
                psi = torch.einsum("kxy,kbiyj->kbixj", G[:, layer], view)
            psi = psi.reshape(K, B, self.dim)
            if len(self.blocks) > 1:
                psi = psi[..., self._inv_perm[layer]]
            outs.append(psi)
        return outs if per_layer else psi

    def evolve(self, params: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Final states ``(K, B, D)`` from parameters ``(K, P)`` and embedded ``(K, B, D)``."""
        if len(self.blocks) == 1:
            return states @ self.circuit_unitary(params).transpose(-1, -2)
        return self.evolve_layers(params, states)

    def expvals(self, params: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``<Z_q>`` of the measured qubits, ``(K, B, m)``."""
        psi = self.evolve(params, states)
        probs = torch.view_as_real(psi).square().sum(-1)
        return probs @ self._zsign

    def probabilities(self, params: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Born probabilities of all basis states, ``(K, B, D)`` (for shot sampling)."""
        return torch.view_as_real(self.evolve(params, states)).square().sum(-1)

    def logits(self, params: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Class scores ``(K, B, C)``."""
        return self.spec.logits(params, self.expvals(params, states))
