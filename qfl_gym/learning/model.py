r"""The VQC classifier: parameter layout, initialization, readout and loss (torch).

Circuit (PennyLane's reference is :mod:`qfl_gym.learning.circuit`; the fast batched
simulation of the same circuit is :mod:`qfl_gym.learning.statevector`):

1. ``AngleEmbedding(x, rotation="X")``: feature ``x_q`` in [0, pi] rotates qubit ``q``
   by ``RX(x_q)`` from ``|0>``.
2. ``StronglyEntanglingLayers(w)`` with ``w`` of shape ``(n_layers, n_qubits, 3)``
   (Schuld, Bocharov, Svore and Wiebe, "Circuit-centric quantum classifiers", PRA 2020):
   per layer ``Rot(w[l, q, 0], w[l, q, 1], w[l, q, 2]) = RZ RY RZ`` on every qubit, then
   ``CNOT(q, (q + r_l) mod n)`` for ``q = 0..n-1`` with range ``r_l = l mod (n-1) + 1``.
3. Readout, the expectations :math:`z_q = \langle Z_q \rangle \in [-1, 1]`, mapped to
   class scores (logits):

   - ``readout="expval"``: :math:`s_c = \lambda z_c` for the ``C <= n`` first qubits,
     with the fixed ``logit_scale`` :math:`\lambda` (a softmax temperature of
     :math:`1/\lambda`; with :math:`\lambda = 1` the softmax could never be confident);
   - ``readout="linear"``: a small trainable head :math:`s = W z + b` on all ``n``
     expectations, ``W`` (C, n), ``b`` (C,), for more classes than qubits.
4. Loss: cross-entropy :math:`-\log \mathrm{softmax}(s)_y`, averaged over samples.

Parameters of one model form a flat vector ``theta`` (P,): the rotation angles
``w.ravel()`` (``3 L n`` values, rad), then (linear readout) ``W.ravel()`` and ``b``.
Federated code handles a ``(K, P)`` matrix, one row per device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from qfl_gym.learning.config import LearningConfig

TORCH_DTYPES = {"double": torch.float64, "single": torch.float32}


@dataclass(frozen=True)
class VQCSpec:
    """Architecture of the VQC classifier (independent of the simulator)."""

    n_qubits: int
    n_layers: int
    num_classes: int
    readout: str = "expval"
    logit_scale: float = 5.0

    @classmethod
    def from_config(cls, config: LearningConfig) -> VQCSpec:
        return cls(
            config.n_qubits,
            config.n_layers,
            config.num_classes,
            config.readout,
            float(config.logit_scale),
        )

    def __post_init__(self) -> None:
        if self.readout == "expval" and self.num_classes > self.n_qubits:
            raise ValueError(
                f"classes: readout='expval' needs num_classes <= n_qubits, got "
                f"{self.num_classes} > {self.n_qubits}"
            )
        if self.readout not in ("expval", "linear"):
            raise ValueError(f"unknown readout {self.readout!r}; valid: 'expval', 'linear'")

    @property
    def num_rotation_parameters(self) -> int:
        """``3 * n_layers * n_qubits`` rotation angles."""
        return 3 * self.n_layers * self.n_qubits

    @property
    def num_parameters(self) -> int:
        """P."""
        p = self.num_rotation_parameters
        if self.readout == "linear":
            p += self.num_classes * (self.n_qubits + 1)
        return p

    @property
    def num_measured(self) -> int:
        """Qubits whose ``<Z>`` the readout uses: C (expval) or n (linear)."""
        return self.num_classes if self.readout == "expval" else self.n_qubits

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        """Shape of the StronglyEntanglingLayers weights, ``(L, n, 3)``."""
        return (self.n_layers, self.n_qubits, 3)

    def rotation_weights(self, params: torch.Tensor) -> torch.Tensor:
        """The ``(..., L, n, 3)`` rotation angles (a view) of parameters ``(..., P)``."""
        return params[..., : self.num_rotation_parameters].unflatten(-1, self.weight_shape)

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Initial parameters (P,) float64.

        Rotation angles uniform in ``[0, 2 pi)`` (PennyLane's usual initialization);
        linear head ``W`` normal with std ``1/sqrt(n)`` and bias zero.
        """
        rot = rng.uniform(0.0, 2.0 * np.pi, self.num_rotation_parameters)
        if self.readout != "linear":
            return rot
        C, n = self.num_classes, self.n_qubits
        head = rng.normal(0.0, 1.0 / math.sqrt(n), C * n)
        return np.concatenate([rot, head, np.zeros(C)])

    def logits(self, params: torch.Tensor, expvals: torch.Tensor) -> torch.Tensor:
        """Class scores ``(K, B, C)`` from parameters ``(K, P)`` and ``<Z>`` ``(K, B, m)``."""
        if self.readout == "expval":
            return expvals * self.logit_scale
        C, n = self.num_classes, self.n_qubits
        r = self.num_rotation_parameters
        w = params[:, r : r + C * n].unflatten(-1, (C, n))
        b = params[:, r + C * n :]
        return torch.baddbmm(b[:, None, :], expvals, w.transpose(1, 2))


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (natural log), shape ``labels.shape``."""
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(logits, dim=-1) - picked
