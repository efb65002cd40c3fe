r"""Batched torch density-matrix simulation of the *noisy* VQC (the fast path with noise on).

The circuit of :mod:`qfl_gym.learning.model` with the gate-layer noise of
:mod:`qfl_gym.learning.noise`: after the angle embedding and after every
``StronglyEntanglingLayers`` layer, each qubit undergoes amplitude damping then
depolarizing. As :class:`~qfl_gym.learning.statevector.StatevectorVQC`, one forward
pass evolves every device's own parameters on its own minibatch: density matrices are
``(K, B, D, D)``, ``D = 2**n``.

How it stays cheap:

- The embedding and its noise act qubit by qubit on ``|0>``, so each input is a product
  of single-qubit density matrices that does not depend on the weights:
  :meth:`DensityMatrixVQC.encode` stores these ``(n, 2, 2)`` factors once per dataset
  (``O(n)`` memory per sample, not ``O(D^2)``); the product is formed per minibatch.
- A layer's unitary comes from the state-vector simulator (Rot entries as phasors,
  Kronecker products by one gather, the CNOT ring folded in as a permutation):
  ``rho -> U rho U^dagger`` is two batched matmuls per layer for circuits up to
  ``max_block_qubits`` (default 4) qubits; wider circuits apply the block unitaries to
  rows and columns with ``einsum`` and permute both.
- The channel on qubit ``q`` is ``rho -> W0_q * rho + W1_q * flip_q(rho)`` with
  constant tables (:func:`~qfl_gym.learning.noise.channel_tables`; ``flip_q`` is one
  gather): three element-wise ops per qubit and layer.
- ``<Z_q>`` needs only the ``m`` measured observables: when ``m < B`` they are
  propagated backwards instead (Heisenberg picture, ``Tr(Phi^dagger(Z_q) rho_in)``,
  with the adjoint channel), ``m`` matrices per device instead of ``B`` (2.5x faster
  training on ``small``).

Gradients come from torch autograd; a test checks outputs and gradients against
PennyLane's ``default.mixed`` device running the same circuit with
``qml.AmplitudeDamping`` and ``qml.DepolarizingChannel`` (within 1e-6 in double
precision).

Cost: ``O(K B D^3)`` per layer (``O(K B D^2 2^g)`` with blocks of ``g`` qubits) and
``O(K B D^2)`` memory per saved tensor, against ``O(K B D^2)`` and ``O(K B D)`` for pure
states. Passes larger than :attr:`DensityMatrixVQC.max_pass_elements` matrix entries are
split over devices (training, :meth:`devices_per_pass`) or samples (evaluation), which
bounds memory; time still grows as ``8^n``, so 4 qubits are cheap (far faster than
``default.mixed``) and the 8-qubit ``case-study`` is slow; figures are on the docs'
benchmarks page (``benchmarks/bench_quantum_noise.py``).

The pure-state path is untouched: without noise channels
:func:`~qfl_gym.learning.training.make_model` returns
:class:`~qfl_gym.learning.statevector.StatevectorVQC` as before.
"""

from __future__ import annotations

import numpy as np
import torch

from qfl_gym.learning.model import VQCSpec
from qfl_gym.learning.noise import QuantumNoiseConfig, channel_tables, layer_channel
from qfl_gym.learning.statevector import StatevectorVQC


class DensityMatrixVQC:
    """Batched density-matrix simulator of the noisy VQC for K devices at once.

    Parameters
    ----------
    spec : VQCSpec
        Circuit and readout.
    noise : QuantumNoiseConfig
        Gate-layer noise (``depolarizing_p``, ``amplitude_damping_gamma``); the other
        fields are not used here.
    dtype : torch.dtype
        ``torch.float64`` (complex128 matrices) or ``torch.float32`` (complex64).
    max_block_qubits : int
        As :class:`~qfl_gym.learning.statevector.StatevectorVQC`.
    max_pass_elements : int
        Largest number of density-matrix entries (``K * B * D * D``) in one pass
        (default ``2**21``, 16 MiB in complex64).
    """

    def __init__(
        self,
        spec: VQCSpec,
        noise: QuantumNoiseConfig,
        dtype: torch.dtype = torch.float64,
        max_block_qubits: int = 4,
        max_pass_elements: int = 2**21,
    ) -> None:
        if not isinstance(noise, QuantumNoiseConfig):
            raise ValueError(f"noise must be a QuantumNoiseConfig, got {type(noise).__name__}")
        if max_pass_elements < 1:
            raise ValueError(f"max_pass_elements must be >= 1, got {max_pass_elements}")
        self.spec = spec
        self.noise = noise
        self._sv = StatevectorVQC(spec, dtype, max_block_qubits)
        self.dtype = dtype
        self.complex_dtype = self._sv.complex_dtype
        self.dim = self._sv.dim
        self.blocks = self._sv.blocks
        self.max_pass_elements = int(max_pass_elements)
        M, s = layer_channel(noise.depolarizing_p, noise.amplitude_damping_gamma)
        self._M, self._s = M, s
        W0, W1 = channel_tables(spec.n_qubits, M, s)
        self._W0 = torch.as_tensor(W0, dtype=dtype).flatten(1).unbind(0)
        self._W1 = torch.as_tensor(W1, dtype=dtype).flatten(1).unbind(0)
        W0, W1 = channel_tables(spec.n_qubits, M.T, s)  # Heisenberg picture: adjoint
        self._W0_adj = torch.as_tensor(W0, dtype=dtype).flatten(1).unbind(0)
        self._W1_adj = torch.as_tensor(W1, dtype=dtype).flatten(1).unbind(0)
        self._zsign = self._sv._zsign
        D = self.dim
        bits = 1 << (spec.n_qubits - 1 - np.arange(spec.n_qubits))
        flip = np.arange(D)[None, :] ^ bits[:, None]  # (n, D): flip bit q of an index
        self._flip = torch.as_tensor((flip[:, :, None] * D + flip[:, None, :]).reshape(-1, D * D))
        inv = self._sv._inv_perm
        self._perm = torch.argsort(inv, dim=1)  # the CNOT rings' basis maps f (L, D)
        z = self._zsign.T.to(self.complex_dtype)  # (m, D)
        self._observables = torch.diag_embed(z)  # (m, D, D): Z_q of the measured qubits

    # ---------------------------------------------------------------- inputs
    def encode(self, angles: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Noisy embedded single-qubit states ``(M, n, 2, 2)`` of angles ``(M, n)``.

        ``RX(x_q)|0>`` on every qubit followed by the layer channel; the circuit's
        input density matrix is the Kronecker product of the ``n`` factors.
        """
        x = torch.as_tensor(angles, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.spec.n_qubits:
            raise ValueError(
                f"angles must have shape (M, {self.spec.n_qubits}), got {tuple(x.shape)}"
            )
        c2 = torch.cos(0.5 * x).square()
        s2 = torch.sin(0.5 * x).square()
        cs = 0.5 * torch.sin(x)  # cos(x/2) sin(x/2)
        M, s = self._M, self._s
        p0 = M[0, 0] * c2 + M[0, 1] * s2
        p1 = M[1, 0] * c2 + M[1, 1] * s2
        coh = (s * cs).to(self.complex_dtype) * 1j  # rho_01 = i cos sin (times s)
        rho = torch.stack(
            [p0.to(self.complex_dtype), coh, coh.conj(), p1.to(self.complex_dtype)], dim=-1
        )
        return rho.unflatten(-1, (2, 2))

    def initial_states(self, inputs: torch.Tensor) -> torch.Tensor:
        """Density matrices ``(..., D, D)`` from factors ``(..., n, 2, 2)``."""
        rho = inputs[..., 0, :, :]
        for q in range(1, self.spec.n_qubits):
            f = inputs[..., q, :, :]
            d = rho.shape[-1]
            rho = (rho[..., :, None, :, None] * f[..., None, :, None, :]).reshape(
                *rho.shape[:-2], 2 * d, 2 * d
            )
        return rho

    # --------------------------------------------------------------- channels
    def apply_noise(self, rho: torch.Tensor, adjoint: bool = False) -> torch.Tensor:
        """The layer channel (or its adjoint) on every qubit of ``rho`` (..., D, D)."""
        shape = rho.shape
        W0, W1 = (self._W0_adj, self._W1_adj) if adjoint else (self._W0, self._W1)
        rho = rho.reshape(*shape[:-2], -1)
        for q in range(self.spec.n_qubits):
            rho = rho * W0[q] + rho[..., self._flip[q]] * W1[q]
        return rho.reshape(shape)

    # -------------------------------------------------------------- forward
    def evolve(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Final density matrices ``(K, B, D, D)`` of params (K, P), inputs (K, B, n, 2, 2)."""
        rho = self.initial_states(inputs)
        gates = self._sv.block_unitaries(params)
        if len(self.blocks) == 1:
            U = gates[0]  # (K, L, D, D), CNOT ring included
            for layer in range(self.spec.n_layers):
                u = U[:, layer, None]
                rho = self.apply_noise(u @ rho @ u.mH)
            return rho
        n, D = self.spec.n_qubits, self.dim
        K, B = rho.shape[:2]
        perm = self._sv._inv_perm
        for layer in range(self.spec.n_layers):
            for (a, b), G in zip(self.blocks, gates, strict=True):
                g = G[:, layer]
                left, mid, right = 2**a, 2 ** (b - a), 2 ** (n - b)
                rows = rho.reshape(K, B, left, mid, right * D)
                rho = torch.einsum("kxy,kbiyj->kbixj", g, rows)
                cols = rho.reshape(K, B * D * left, mid, right)
                rho = torch.einsum("kxy,kiyj->kixj", g.conj(), cols)
            rho = rho.reshape(K, B, D, D)
            p = perm[layer]
            rho = self.apply_noise(rho[..., p, :][..., p])
        return rho

    def observables(self, params: torch.Tensor) -> torch.Tensor:
        r"""Heisenberg-picture observables ``(K, m, D, D)``: :math:`\Phi^\dagger(Z_q)`.

        ``Phi`` is every device's noisy circuit after the embedding, so
        ``<Z_q> = Tr(Phi^dagger(Z_q) rho_in)`` for any input ``rho_in``: propagating the
        ``m`` measured observables costs ``m`` matrices per device instead of ``B``.
        """
        K = params.shape[0]
        gates = self._sv.block_unitaries(params)
        obs = self._observables.expand(K, -1, -1, -1)
        if len(self.blocks) == 1:
            U = gates[0]
            for layer in reversed(range(self.spec.n_layers)):
                u = U[:, layer, None]
                obs = u.mH @ self.apply_noise(obs, adjoint=True) @ u
            return obs
        n, D, m = self.spec.n_qubits, self.dim, obs.shape[1]
        for layer in reversed(range(self.spec.n_layers)):
            obs = self.apply_noise(obs, adjoint=True)
            f = self._perm[layer]
            obs = obs[..., f, :][..., f]
            for (a, b), G in zip(self.blocks, gates, strict=True):
                g = G[:, layer]
                left, mid, right = 2**a, 2 ** (b - a), 2 ** (n - b)
                rows = obs.reshape(K, m, left, mid, right * D)
                obs = torch.einsum("kyx,kbiyj->kbixj", g.conj(), rows)
                cols = obs.reshape(K, m * D * left, mid, right)
                obs = torch.einsum("kyx,kiyj->kixj", g, cols)
            obs = obs.reshape(K, m, D, D)
        return obs

    def _passes(self, params: torch.Tensor, inputs: torch.Tensor, fn) -> torch.Tensor:
        """``fn(params, inputs)`` over sample chunks when gradients are off and it is big."""
        K, B = inputs.shape[:2]
        if torch.is_grad_enabled() or K * B * self.dim**2 <= self.max_pass_elements:
            return fn(params, inputs)
        step = max(1, self.max_pass_elements // (K * self.dim**2))
        return torch.cat([fn(params, inputs[:, i : i + step]) for i in range(0, B, step)], 1)

    def devices_per_pass(self, batch_size: int) -> int:
        """Devices whose minibatches of ``batch_size`` fit one training pass."""
        return max(1, self.max_pass_elements // (max(1, batch_size) * self.dim**2))

    def probabilities(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities of all basis states, ``(K, B, D)`` (real)."""

        def fn(p, x):
            return self.evolve(p, x).diagonal(dim1=-2, dim2=-1).real

        return self._passes(params, inputs, fn)

    def expvals(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``<Z_q>`` of the measured qubits, ``(K, B, m)``.

        Evolves whichever is fewer: the ``m`` observables backwards (Heisenberg
        picture, :meth:`observables`; ``Tr(O rho) = sum_ij O_ij conj(rho_ij)`` for
        Hermitian ``rho``) or the ``B`` input states forwards (Schroedinger picture).
        """
        if self.spec.num_measured >= inputs.shape[1]:
            return self.probabilities(params, inputs) @ self._zsign
        K = params.shape[0]
        obs = self.observables(params).reshape(K, self.spec.num_measured, -1)

        def fn(p, x):
            rho = self.initial_states(x).reshape(K, x.shape[1], -1).conj()
            return (rho @ obs.transpose(1, 2)).real

        return self._passes(params, inputs, fn)

    def logits(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Class scores ``(K, B, C)``."""
        return self.spec.logits(params, self.expvals(params, inputs))
