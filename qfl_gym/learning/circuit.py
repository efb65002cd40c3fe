"""The reference VQC as a PennyLane qnode, and the PennyLane device path for training.

This module imports PennyLane; nothing imports it unless a PennyLane backend
(``LearningConfig(backend="default.qubit" | "lightning.qubit")``) or the reference
itself is asked for.

The circuit is ``AngleEmbedding(x, rotation="X")`` then ``StronglyEntanglingLayers(w)``,
measuring ``<Z_q>`` on the first ``m`` wires (see :mod:`qfl_gym.learning.model`).
:class:`PennyLaneVQC` runs it with the torch interface and parameter broadcasting over a
device's minibatch, one qnode call per device: the straightforward implementation that
:class:`~qfl_gym.learning.statevector.StatevectorVQC` must match and outrun.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pennylane as qml
import torch

from qfl_gym.learning.model import VQCSpec

#: default differentiation method per PennyLane device
DIFF_METHODS = {
    "default.qubit": "backprop",
    "lightning.qubit": "adjoint",
    "default.mixed": "backprop",  # mixed states: noise channels (qfl_gym.learning.noise)
}


def make_qnode(
    n_qubits: int,
    n_layers: int,
    num_measured: int,
    device: str = "default.qubit",
    diff_method: str | None = None,
    noise: Any = None,
    measure: str = "expval",
) -> Any:
    """The reference VQC qnode ``circuit(inputs (B, n) or (n,), weights (L, n, 3))``.

    Returns a tuple of ``num_measured`` tensors ``<Z_q>`` (each (B,) or scalar), or with
    ``measure="probs"`` the probabilities of all ``2**n`` basis states ((B, 2**n) or
    (2**n,)). ``n_layers`` is implied by the weights; it is accepted for symmetry and
    checked.

    With ``noise`` (a :class:`~qfl_gym.learning.noise.QuantumNoiseConfig` with channels
    on; ``device="default.mixed"``), ``qml.AmplitudeDamping`` then
    ``qml.DepolarizingChannel`` act on every wire after the embedding and after each
    ``StronglyEntanglingLayers`` layer (applied one layer at a time with its range
    ``r_l = l mod (n-1) + 1``): the gate-layer noise model of
    :mod:`qfl_gym.learning.noise`.
    """
    if device not in DIFF_METHODS:
        raise ValueError(
            f"unknown PennyLane device {device!r}; valid: {', '.join(map(repr, DIFF_METHODS))}"
        )
    if measure not in ("expval", "probs"):
        raise ValueError(f"unknown measure {measure!r}; valid: 'expval', 'probs'")
    noisy = noise is not None and noise.channels_on
    if noisy and device != "default.mixed":
        raise ValueError(
            f"noise channels need the mixed-state device 'default.mixed', got device={device!r}"
        )
    dev = qml.device(device, wires=n_qubits)
    wires = list(range(n_qubits))

    def noise_layer():
        for w in wires:
            if noise.amplitude_damping_gamma > 0:
                qml.AmplitudeDamping(noise.amplitude_damping_gamma, wires=w)
            if noise.depolarizing_p > 0:
                qml.DepolarizingChannel(noise.depolarizing_p, wires=w)

    @qml.qnode(dev, interface="torch", diff_method=diff_method or DIFF_METHODS[device])
    def circuit(inputs, weights):
        if weights.shape[-3] != n_layers:
            raise ValueError(f"weights must have {n_layers} layers, got shape {weights.shape}")
        qml.AngleEmbedding(inputs, wires=wires, rotation="X")
        if noisy:
            noise_layer()
            for layer in range(n_layers):
                r = layer % (n_qubits - 1) + 1
                qml.StronglyEntanglingLayers(
                    weights[..., layer : layer + 1, :, :], wires=wires, ranges=[r]
                )
                noise_layer()
        else:
            qml.StronglyEntanglingLayers(weights, wires=wires)
        if measure == "probs":
            return qml.probs(wires=wires)
        return tuple(qml.expval(qml.PauliZ(q)) for q in range(num_measured))

    return circuit


class PennyLaneVQC:
    """The VQC on a PennyLane device, looping over devices (same interface as the fast path).

    Parameters
    ----------
    spec : VQCSpec
        Circuit and readout.
    device : {"default.qubit", "lightning.qubit", "default.mixed"}
        PennyLane device; differentiation by backprop (default.qubit, default.mixed) or
        adjoint (lightning.qubit).
    noise : QuantumNoiseConfig, optional
        Gate-layer noise channels (need ``device="default.mixed"``).
    """

    def __init__(self, spec: VQCSpec, device: str = "default.qubit", noise: Any = None) -> None:
        self.spec = spec
        self.device = device
        self.noise = noise
        self.dtype = torch.float64
        self._qnode = None
        self._probs_qnode = None
        if device not in DIFF_METHODS:
            raise ValueError(
                f"unknown PennyLane device {device!r}; valid: {', '.join(map(repr, DIFF_METHODS))}"
            )
        if noise is not None and noise.channels_on and device != "default.mixed":
            raise ValueError(
                f"noise channels need the mixed-state device 'default.mixed', got {device!r}"
            )

    @property
    def qnode(self) -> Any:
        """The qnode, built on first use (and after unpickling)."""
        if self._qnode is None:
            s = self.spec
            self._qnode = make_qnode(
                s.n_qubits, s.n_layers, s.num_measured, self.device, noise=self.noise
            )
        return self._qnode

    @property
    def probs_qnode(self) -> Any:
        """The same circuit measuring the probabilities of all basis states."""
        if self._probs_qnode is None:
            s = self.spec
            self._probs_qnode = make_qnode(
                s.n_qubits,
                s.n_layers,
                s.num_measured,
                self.device,
                noise=self.noise,
                measure="probs",
            )
        return self._probs_qnode

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_qnode"] = None  # qnodes hold devices and closures: rebuilt lazily
        state["_probs_qnode"] = None
        return state

    def encode(self, angles: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The qnode's inputs: the angles ``(M, n)`` as a float64 tensor."""
        x = torch.as_tensor(angles, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.spec.n_qubits:
            raise ValueError(
                f"angles must have shape (M, {self.spec.n_qubits}), got {tuple(x.shape)}"
            )
        return x

    def expvals(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``<Z_q>`` ``(K, B, m)``: one broadcast qnode call per device."""
        weights = self.spec.rotation_weights(params)
        rows = []
        for k in range(params.shape[0]):
            out = self.qnode(inputs[k], weights[k])
            rows.append(torch.stack([o.reshape(-1) for o in out], dim=-1))
        return torch.stack(rows)

    def probabilities(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Probabilities of all basis states ``(K, B, 2**n)``: one qnode call per device."""
        weights = self.spec.rotation_weights(params)
        return torch.stack(
            [
                self.probs_qnode(inputs[k], weights[k]).reshape(inputs.shape[1], -1)
                for k in range(params.shape[0])
            ]
        )

    def logits(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Class scores ``(K, B, C)``."""
        return self.spec.logits(params, self.expvals(params, inputs))
