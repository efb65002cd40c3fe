r"""Finite-shot gradients of the VQC loss: the parameter-shift rule with H shots.

On hardware a device cannot back-propagate through its circuit: it estimates every
expectation :math:`z_q = \langle Z_q \rangle` from ``H`` measurements and gets the
derivatives from the parameter-shift rule (Mitarai et al. 2018; Schuld et al. 2019).
Every rotation angle :math:`\theta_j` of the VQC (the three angles of each ``Rot``
gate, each a Pauli rotation) enters through :math:`e^{-i \theta_j P / 2}`, so

.. math::

    \frac{\partial z_q}{\partial \theta_j}
    = \tfrac12 \left[ z_q(\theta + \tfrac{\pi}{2} e_j) - z_q(\theta - \tfrac{\pi}{2} e_j)
      \right],

exactly, with or without the gate-noise channels (they do not depend on
:math:`\theta`). :func:`shift_jacobian` estimates both shifted expectations of every
angle, device and sample from ``H`` shots each (multinomial draws from the circuit's
exact outcome probabilities of the measured qubits,
:func:`~qfl_gym.learning.noise.sample_expvals`), so the Jacobian estimate is
**unbiased**, with variance
:math:`[(1 - z_+^2) + (1 - z_-^2)] / (4 H)` per entry: it falls as :math:`1/H`.

:func:`shot_gradient` forms a device's minibatch gradient by the chain rule: the
derivative of the cross-entropy with respect to :math:`z` (and the classical head of
``readout="linear"``) is evaluated at an independent ``H``-shot estimate
:math:`\hat z` of the unshifted circuit and contracted with the estimated Jacobian.
It is unbiased for any loss linear in :math:`z`; for the cross-entropy (nonlinear in
:math:`z`) its only bias is that of :math:`\partial L / \partial z` at
:math:`\hat z`, of order :math:`1/H`. Every device therefore runs
``(2 P_rot + 1) B`` circuits of ``H`` shots per minibatch step.

All devices, shifts and samples run as one batch of circuits per step (torch), and
every draw comes from the given numpy generator, so training is reproducible from
the learner's seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from qfl_gym.learning.model import cross_entropy
from qfl_gym.learning.noise import marginal_probabilities, sample_expvals

SHIFT = 0.5 * math.pi


def shifted_parameters(params: torch.Tensor, num_rotation: int) -> torch.Tensor:
    """Parameters ``(R, 2 P_rot + 1, P)``: unshifted, then every angle +pi/2, then -pi/2."""
    P = params.shape[1]
    eye = torch.eye(num_rotation, P, dtype=params.dtype) * SHIFT
    return torch.cat(
        [params[:, None, :], params[:, None, :] + eye, params[:, None, :] - eye], dim=1
    )


@torch.no_grad()
def sampled_expvals(
    model, params: torch.Tensor, inputs: torch.Tensor, shots: int, rng: np.random.Generator
) -> np.ndarray:
    """``H``-shot estimates of the measured ``<Z_q>``, ``(R, B, m)`` float64."""
    spec = model.spec
    probs = model.probabilities(params, inputs).to(torch.float64).numpy()
    marginal = marginal_probabilities(probs, spec.n_qubits, spec.num_measured)
    return sample_expvals(marginal, shots, rng)


def shift_jacobian(
    model, params: torch.Tensor, inputs: torch.Tensor, shots: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shot estimates of ``z`` and of its parameter-shift Jacobian.

    Parameters
    ----------
    model : VQCModel
        A simulator with ``probabilities(params, inputs)`` (``(R, B, 2**n)``).
    params : torch.Tensor, shape (R, P)
        One parameter row per device.
    inputs : torch.Tensor, shape (R, B, ...)
        Each device's encoded minibatch.
    shots : int
        H, measurements per expectation (per circuit).
    rng : numpy.random.Generator

    Returns
    -------
    z : ndarray, shape (R, B, m)
        Estimates of the unshifted ``<Z_q>`` (H shots each).
    jacobian : ndarray, shape (R, B, m, P_rot)
        Estimates of ``d<Z_q>/d theta_j`` of the rotation angles (2 H shots each).
    """
    spec = model.spec
    R, B = inputs.shape[:2]
    num_rot = spec.num_rotation_parameters
    width = 2 * num_rot + 1
    shifted = shifted_parameters(params.detach(), num_rot).reshape(R * width, -1)
    batch = (
        inputs.unsqueeze(1)
        .expand(R, width, *inputs.shape[1:])
        .reshape(R * width, *inputs.shape[1:])
    )
    z = sampled_expvals(model, shifted, batch, shots, rng).reshape(R, width, B, -1)
    plus, minus = z[:, 1 : num_rot + 1], z[:, num_rot + 1 :]
    jacobian = 0.5 * (plus - minus)  # (R, P_rot, B, m)
    return z[:, 0], np.ascontiguousarray(jacobian.transpose(0, 2, 3, 1))


def shot_gradient(
    model,
    params: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    inv_count: torch.Tensor,
    shots: int,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite-shot gradient of every device's minibatch-mean cross-entropy.

    Parameters
    ----------
    params : torch.Tensor, shape (R, P)
    inputs : torch.Tensor, shape (R, B, ...)
    labels : torch.Tensor of int64, shape (R, B)
    weight : torch.Tensor, shape (R, B)
        1 for real samples, 0 for padding.
    inv_count : torch.Tensor, shape (R,)
        1 / (real samples of the device's minibatch).
    shots, rng
        H and the generator of the measurement draws.

    Returns
    -------
    grad : torch.Tensor, shape (R, P)
        Row ``r``: the estimate of device ``r``'s gradient (see module doc).
    loss_sum : torch.Tensor, shape (R,)
        Summed cross-entropy of each device's minibatch at the shot estimate ``z``.
    """
    spec = model.spec
    dtype = params.dtype
    z_hat, jac = shift_jacobian(model, params, inputs, shots, rng)
    z = torch.as_tensor(z_hat, dtype=dtype).requires_grad_(True)
    theta = params.detach().clone().requires_grad_(True)  # the head of readout="linear"
    per_device = (cross_entropy(spec.logits(theta, z), labels) * weight).sum(dim=1)
    total = (per_device * inv_count).sum()
    dz, dtheta = torch.autograd.grad(total, (z, theta), allow_unused=True)
    grad = torch.zeros_like(params) if dtheta is None else dtheta.clone()
    rot = torch.einsum("rbm,rbmp->rp", dz, torch.as_tensor(jac, dtype=dtype))
    grad[:, : spec.num_rotation_parameters] = rot
    return grad, per_device.detach()
