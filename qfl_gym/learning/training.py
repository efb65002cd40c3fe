r"""Local training of all K devices at once, vectorized over devices and samples.

One round of local training (McMahan et al. 2017, ``ClientUpdate``): every device starts
from the broadcast global parameters and runs ``E`` epochs of minibatch gradient descent
on its own shard. Here all devices step together: the parameters are a ``(K, P)``
tensor, minibatch ``s`` of every device is gathered into a ``(K, B, ...)`` batch, and one
forward/backward pass of the simulator yields every device's gradient (the loss is the
sum of the devices' minibatch-mean losses, so row ``k`` of the gradient is device
``k``'s own gradient).

- Each epoch every device shuffles its shard (seeded ``numpy.random.Generator``) and
  cuts it into ``ceil(n_k / B)`` minibatches; the last may be smaller. Shards of
  different sizes run different numbers of steps: at step ``s`` a device with fewer
  batches is *inactive* and its parameters and optimizer state stay untouched
  (padding samples have weight 0).
- Optimizers are per device: :class:`BatchedAdam` keeps first/second moments and the
  step count per row (Kingma and Ba 2015, bias-corrected), :class:`BatchedSGD` is
  plain gradient descent. Their state is fresh every round (devices are stateless
  between rounds, as in FedAvg).
- A device's reported *local training loss* is the mean cross-entropy of all the
  minibatches it processed in the round (each evaluated before its update).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import torch

from qfl_gym.learning.model import VQCSpec, cross_entropy


class VQCModel(Protocol):
    """What local training needs from a simulator (fast path or PennyLane)."""

    spec: VQCSpec
    dtype: torch.dtype

    def encode(self, angles: np.ndarray) -> torch.Tensor: ...

    def logits(self, params: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor: ...


class BatchedSGD:
    """Gradient descent on a ``(K, P)`` parameter tensor, rows masked per step."""

    def __init__(self, shape: tuple[int, int], lr: float, dtype: torch.dtype) -> None:
        self.lr = float(lr)

    def step(self, theta: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """``theta -= lr * grad`` on the active rows (``active`` (K, 1) of 0/1)."""
        theta.sub_(grad * active, alpha=self.lr)


class BatchedAdam:
    """Adam on a ``(K, P)`` tensor with independent per-row state and step counts.

    Adam is element-wise, so rows (devices) never share state. Defaults
    ``betas=(0.9, 0.999)``, ``eps=1e-8`` (Kingma and Ba 2015; torch's defaults).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        lr: float,
        dtype: torch.dtype,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.lr = float(lr)
        self.b1, self.b2 = betas
        self.eps = float(eps)
        self.m = torch.zeros(shape, dtype=dtype)
        self.v = torch.zeros(shape, dtype=dtype)
        self.t = torch.zeros((shape[0], 1), dtype=dtype)

    def step(self, theta: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """One Adam step on the rows where ``active`` (K, 1) is 1; others unchanged."""
        self.t += active
        self.m.lerp_(grad, active * (1.0 - self.b1))
        self.v.lerp_(grad * grad, active * (1.0 - self.b2))
        t = self.t.clamp(min=1.0)
        m_hat = self.m / (1.0 - self.b1**t)
        denom = (self.v / (1.0 - self.b2**t)).sqrt_().add_(self.eps)
        theta.sub_(m_hat / denom * active, alpha=self.lr)


OPTIMIZER_CLASSES = {"adam": BatchedAdam, "sgd": BatchedSGD}


class LocalTrainer:
    """Batched local training of K devices on their shards.

    Parameters
    ----------
    model : VQCModel
        Simulator: :class:`~qfl_gym.learning.statevector.StatevectorVQC` or
        :class:`~qfl_gym.learning.circuit.PennyLaneVQC`.
    inputs : torch.Tensor, shape (M, ...)
        Encoded training inputs grouped by device (device ``k`` owns rows
        ``offsets[k] : offsets[k] + counts[k]``).
    labels : torch.Tensor of int64, shape (M,)
        Class indices.
    counts, offsets : ndarray of int, shape (K,)
        Shard sizes (all >= 1) and starts.
    local_epochs, batch_size : int
        E and B.
    optimizer : {"adam", "sgd"}
    learning_rate : float
    """

    def __init__(
        self,
        model: VQCModel,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        counts: np.ndarray,
        offsets: np.ndarray,
        *,
        local_epochs: int = 1,
        batch_size: int = 16,
        optimizer: str = "adam",
        learning_rate: float = 0.05,
    ) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0 or counts.min() < 1:
            raise ValueError(f"every device needs at least one sample, got counts {counts}")
        if optimizer not in OPTIMIZER_CLASSES:
            raise ValueError(
                f"unknown optimizer {optimizer!r}; valid: {', '.join(map(repr, OPTIMIZER_CLASSES))}"
            )
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.counts = counts
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.local_epochs = int(local_epochs)
        self.batch_size = int(min(batch_size, counts.max()))
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        K = counts.size
        self.num_devices = K
        self.steps_per_epoch = int(-(-counts.max() // self.batch_size))
        width = self.steps_per_epoch * self.batch_size
        pos = np.arange(width)[None, :]
        self._valid = pos < counts[:, None]  # (K, S*B)
        self._beyond = ~self._valid[:, : counts.max()]
        dtype = model.dtype
        weight = self._valid.reshape(K, self.steps_per_epoch, self.batch_size).transpose(1, 0, 2)
        self._weight = torch.as_tensor(np.ascontiguousarray(weight), dtype=dtype)  # (S, K, B)
        cnt = weight.sum(axis=2)  # (S, K)
        self._inv_count = torch.as_tensor(1.0 / np.maximum(cnt, 1), dtype=dtype)
        self._active = torch.as_tensor((cnt > 0)[..., None], dtype=dtype)  # (S, K, 1)
        self._device_of_sample = torch.as_tensor(np.repeat(np.arange(K), counts))

    @property
    def samples_per_round(self) -> int:
        """Training samples processed in one round (all devices, all epochs)."""
        return int(self.counts.sum()) * self.local_epochs

    def _epoch_indices(self, rng: np.random.Generator) -> torch.Tensor:
        """Minibatch sample indices ``(S, K, B)`` of one epoch (padding -> shard start)."""
        K, n_max = self.num_devices, int(self.counts.max())
        keys = rng.random((K, n_max))
        keys[self._beyond] = 2.0  # padding positions sort last
        perm = np.argsort(keys, axis=1)
        width = self.steps_per_epoch * self.batch_size
        idx = np.zeros((K, width), dtype=np.int64)
        idx[:, :n_max] = perm
        idx = np.where(self._valid, idx, 0) + self.offsets[:, None]
        idx = idx.reshape(K, self.steps_per_epoch, self.batch_size).transpose(1, 0, 2)
        return torch.from_numpy(np.ascontiguousarray(idx))

    def train(
        self, global_params: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Run E local epochs on every device from ``global_params`` (P,).

        Returns
        -------
        local_params : torch.Tensor, shape (K, P)
            Every device's parameters after local training.
        local_loss : ndarray, shape (K,)
            Mean minibatch cross-entropy of each device over the round.
        """
        K = self.num_devices
        dtype = self.model.dtype
        theta = global_params.to(dtype).expand(K, -1).clone().requires_grad_(True)
        opt = OPTIMIZER_CLASSES[self.optimizer](tuple(theta.shape), self.learning_rate, dtype)
        loss_sum = torch.zeros(K, dtype=dtype)
        logits_fn = self.model.logits
        chunk = self._devices_per_pass()
        for _ in range(self.local_epochs):
            idx = self._epoch_indices(rng)
            for s in range(self.steps_per_epoch):
                batch = idx[s]
                if chunk is not None:
                    grad, per_device = self._chunked_gradient(theta, batch, s, chunk)
                    with torch.no_grad():
                        opt.step(theta, grad, self._active[s])
                        loss_sum += per_device
                    continue
                ce = cross_entropy(logits_fn(theta, self.inputs[batch]), self.labels[batch])
                per_device = (ce * self._weight[s]).sum(dim=1)
                total = (per_device * self._inv_count[s]).sum()
                (grad,) = torch.autograd.grad(total, theta)
                with torch.no_grad():
                    opt.step(theta, grad, self._active[s])
                    loss_sum += per_device.detach()
        local_loss = (loss_sum / torch.as_tensor(self.counts * self.local_epochs)).numpy()
        return theta.detach(), local_loss.astype(np.float64)

    def _devices_per_pass(self) -> int | None:
        """Devices per forward/backward pass if the model splits passes (else None)."""
        per_pass = getattr(self.model, "devices_per_pass", None)
        if per_pass is None:
            return None
        chunk = int(per_pass(self.batch_size))
        return chunk if chunk < self.num_devices else None

    def _chunked_gradient(
        self, theta: torch.Tensor, batch: torch.Tensor, s: int, chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient ``(K, P)`` and summed losses (K,) of step ``s``, ``chunk`` devices per pass.

        The total loss is a sum over devices, so each row of the gradient is one
        device's own: passes over device slices give the same gradient with memory
        bounded by the slice (the density-matrix path of wide circuits).
        """
        grads, losses = [], []
        for a in range(0, self.num_devices, chunk):
            sl = slice(a, a + chunk)
            th = theta[sl].detach().requires_grad_(True)
            ce = cross_entropy(
                self.model.logits(th, self.inputs[batch[sl]]), self.labels[batch[sl]]
            )
            per_device = (ce * self._weight[s, sl]).sum(dim=1)
            (g,) = torch.autograd.grad((per_device * self._inv_count[s, sl]).sum(), th)
            grads.append(g)
            losses.append(per_device.detach())
        return torch.cat(grads), torch.cat(losses)

    @torch.no_grad()
    def shard_loss(self, params: torch.Tensor) -> np.ndarray:
        """Mean cross-entropy of one model ``params`` (P,) on each device's shard, (K,)."""
        p = params.to(self.model.dtype)[None]
        ce = cross_entropy(self.model.logits(p, self.inputs[None]), self.labels[None])[0]
        sums = torch.zeros(self.num_devices, dtype=ce.dtype).index_add_(
            0, self._device_of_sample, ce
        )
        return (sums / torch.as_tensor(self.counts)).numpy().astype(np.float64)


@torch.no_grad()
def evaluate(
    model: VQCModel,
    params: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    shots: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of one model ``params`` (P,) on a dataset.

    With ``shots``, every sample's ``<Z_q>`` is estimated from ``shots`` measurements
    drawn with ``rng`` from the circuit's exact probabilities
    (:func:`qfl_gym.learning.noise.sample_expvals`); otherwise they are exact.
    """
    if shots is not None:
        logits = _shot_logits(model, params.to(model.dtype)[None], inputs[None], shots, rng)[0]
        loss = cross_entropy(logits, labels).mean()
        accuracy = (logits.argmax(dim=-1) == labels).to(logits.dtype).mean()
        return float(loss), float(accuracy)
    logits = model.logits(params.to(model.dtype)[None], inputs[None])[0]
    loss = cross_entropy(logits, labels).mean()
    accuracy = (logits.argmax(dim=-1) == labels).to(logits.dtype).mean()
    return float(loss), float(accuracy)


def _shot_logits(
    model: Any,
    params: torch.Tensor,
    inputs: torch.Tensor,
    shots: int,
    rng: np.random.Generator | None,
) -> torch.Tensor:
    """Class scores ``(K, B, C)`` from shot estimates of the measured ``<Z_q>``."""
    from qfl_gym.learning.noise import marginal_probabilities, sample_expvals

    if rng is None:
        raise ValueError("shots need a numpy Generator rng for the measurement draws")
    spec = model.spec
    probs = model.probabilities(params, inputs).detach().to(torch.float64).numpy()
    marginal = marginal_probabilities(probs, spec.n_qubits, spec.num_measured)
    expvals = torch.as_tensor(sample_expvals(marginal, shots, rng), dtype=params.dtype)
    return spec.logits(params, expvals)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch intra-op threads, then restore the setting.

    The VQC tensors are tiny, so a second thread only adds synchronization; on a loaded
    machine (other processes on the cores) OpenMP threads waiting for each other made a
    ``small`` round ~40x slower with 2 threads than with 1. ``None``: leave torch alone.
    """
    if num_threads is None or torch.get_num_threads() == num_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_model(
    spec: VQCSpec, backend: str = "torch", precision: str = "single", noise: Any = None
) -> Any:
    """The simulator for ``backend``: the fast path or a PennyLane device.

    With ``noise`` channels on (a :class:`~qfl_gym.learning.noise.QuantumNoiseConfig`),
    ``backend="torch"`` is the batched density-matrix path
    (:class:`~qfl_gym.learning.density.DensityMatrixVQC`) and ``"default.mixed"`` the
    PennyLane reference; pure-state PennyLane devices raise ``ValueError``.
    """
    noisy = noise is not None and noise.channels_on
    if backend == "torch":
        from qfl_gym.learning.model import TORCH_DTYPES

        if noisy:
            from qfl_gym.learning.density import DensityMatrixVQC

            return DensityMatrixVQC(spec, noise, TORCH_DTYPES[precision])
        from qfl_gym.learning.statevector import StatevectorVQC

        return StatevectorVQC(spec, TORCH_DTYPES[precision])
    from qfl_gym.learning.circuit import PennyLaneVQC

    return PennyLaneVQC(spec, device=backend, noise=noise if noisy else None)
