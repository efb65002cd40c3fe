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
- With ``train_shots`` (:class:`LocalTrainer`), gradients are finite-shot
  parameter-shift estimates (:mod:`qfl_gym.learning.shots`) instead of autograd's
  exact ones, drawn from the trainer's ``shot_rng``; the local loss is then the
  cross-entropy at the shot estimates of the expectations.

:class:`StackedTrainer` trains the devices of several :class:`LocalTrainer` (e.g. the
K devices of each of n environments of a vector env) as one ``(n K, P)`` batch: one
forward/backward pass per step for all of them, each row still its own device with
its own shard, minibatch order (drawn from its own task's generator) and optimizer
state, so every task gets the result its own trainer would give (to floating-point
rounding).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
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


class _RowTraining:
    """The minibatch loop over a ``(rows, P)`` parameter tensor, one row per device.

    Shared by :class:`LocalTrainer` (the K devices of one task) and
    :class:`StackedTrainer` (the devices of several tasks), which pass everything the
    loop needs to this ``__init__``.

    Parameters
    ----------
    model : VQCModel
        The simulator.
    inputs, labels : torch.Tensor, shape (M, ...) and (M,)
        Encoded training inputs and class indices of every row's samples.
    counts : ndarray of int, shape (R,)
        Samples of each row (device).
    local_epochs, batch_size, steps_per_epoch : int
        E, B and minibatch steps per epoch S.
    optimizer : {"adam", "sgd"}
    learning_rate : float
    weight : torch.Tensor, shape (S, R, B)
        1 for a real minibatch slot, 0 for padding.
    inv_count : torch.Tensor, shape (S, R)
        1 / (real samples of row r at step s), 1 where none.
    active : torch.Tensor, shape (S, R, 1)
        1 where row r trains at step s.
    device_of_sample : torch.Tensor of int64, shape (M,)
        The row of every sample.
    step_rows : list of (torch.Tensor or None), optional
        Per step, the rows to simulate (None: all).
    train_shots : int, optional
        Measurements per expectation of finite-shot gradients (None: exact).
    shot_rng : numpy.random.Generator, optional
        The generator of those measurements.
    """

    def __init__(
        self,
        *,
        model: VQCModel,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        counts: np.ndarray,
        local_epochs: int,
        batch_size: int,
        steps_per_epoch: int,
        optimizer: str,
        learning_rate: float,
        weight: torch.Tensor,
        inv_count: torch.Tensor,
        active: torch.Tensor,
        device_of_sample: torch.Tensor,
        step_rows: list[torch.Tensor | None] | None = None,
        train_shots: int | None = None,
        shot_rng: np.random.Generator | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.counts = counts
        self.num_devices = int(counts.size)
        self.local_epochs = int(local_epochs)
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        self._weight = weight
        self._inv_count = inv_count
        self._active = active
        self._device_of_sample = device_of_sample
        self._step_rows = step_rows
        self.train_shots = train_shots
        self.shot_rng = shot_rng

    @property
    def samples_per_round(self) -> int:
        """Training samples processed in one round (all devices, all epochs)."""
        return int(self.counts.sum()) * self.local_epochs

    def _train_rows(
        self, start: torch.Tensor, epoch_indices: Callable[[], torch.Tensor]
    ) -> tuple[torch.Tensor, np.ndarray]:
        """E epochs from ``start`` (R, P); ``epoch_indices()`` gives each epoch's (S, R, B)."""
        dtype = self.model.dtype
        theta = start.to(dtype).clone().requires_grad_(True)
        opt = OPTIMIZER_CLASSES[self.optimizer](tuple(theta.shape), self.learning_rate, dtype)
        loss_sum = torch.zeros(theta.shape[0], dtype=dtype)
        logits_fn = self.model.logits
        chunk = self._devices_per_pass()
        step_rows = self._step_rows
        for _ in range(self.local_epochs):
            idx = epoch_indices()
            for s in range(self.steps_per_epoch):
                batch = idx[s]
                rows = None if step_rows is None else step_rows[s]
                if self.train_shots is not None:
                    grad, per_device = self._shot_gradient(theta, batch, s, chunk)
                elif rows is not None:
                    grad, per_device = self._rows_gradient(theta, batch, s, rows, chunk)
                elif chunk is not None:
                    grad, per_device = self._chunked_gradient(theta, batch, s, chunk)
                else:  # all rows in one pass
                    ce = cross_entropy(logits_fn(theta, self.inputs[batch]), self.labels[batch])
                    per_device = (ce * self._weight[s]).sum(dim=1)
                    total = (per_device * self._inv_count[s]).sum()
                    (grad,) = torch.autograd.grad(total, theta)
                    per_device = per_device.detach()
                with torch.no_grad():
                    opt.step(theta, grad, self._active[s])
                    loss_sum += per_device
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

    def _shot_gradient(
        self, theta: torch.Tensor, batch: torch.Tensor, s: int, chunk: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Finite-shot gradient ``(K, P)`` and summed losses (K,) of step ``s``.

        Every device runs ``2 P_rot + 1`` circuits per sample; with a per-pass device
        limit (``chunk``) the devices go in slices of ``chunk // (2 P_rot + 1)``.
        """
        from qfl_gym.learning.shots import shot_gradient

        circuits = 2 * self.model.spec.num_rotation_parameters + 1
        width = self.num_devices if chunk is None else max(1, chunk // circuits)
        grads, losses = [], []
        for a in range(0, self.num_devices, width):
            sl = slice(a, a + width)
            g, loss = shot_gradient(
                self.model,
                theta[sl].detach(),
                self.inputs[batch[sl]],
                self.labels[batch[sl]],
                self._weight[s, sl],
                self._inv_count[s, sl],
                self.train_shots,
                self.shot_rng,
            )
            grads.append(g)
            losses.append(loss)
        return torch.cat(grads), torch.cat(losses)

    def _rows_gradient(
        self,
        theta: torch.Tensor,
        batch: torch.Tensor,
        s: int,
        rows: torch.Tensor,
        chunk: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient ``(R, P)`` and summed losses (R,) of step ``s`` simulating only ``rows``.

        The other rows are inactive at this step (weight 0): their gradient and loss
        are zero, as a full pass would give, without simulating their circuits.
        """
        grad = torch.zeros(theta.shape, dtype=theta.dtype)
        loss = torch.zeros(theta.shape[0], dtype=theta.dtype)
        width = rows.numel() if chunk is None else chunk
        for a in range(0, rows.numel(), width):
            r = rows[a : a + width]
            th = theta.detach().index_select(0, r).requires_grad_(True)
            b = batch.index_select(0, r)
            ce = cross_entropy(self.model.logits(th, self.inputs[b]), self.labels[b])
            per_device = (ce * self._weight[s].index_select(0, r)).sum(dim=1)
            total = (per_device * self._inv_count[s].index_select(0, r)).sum()
            (g,) = torch.autograd.grad(total, th)
            grad.index_copy_(0, r, g)
            loss.index_copy_(0, r, per_device.detach())
        return grad, loss

    @torch.no_grad()
    def shard_loss(self, params: torch.Tensor) -> np.ndarray:
        """Mean cross-entropy of one model ``params`` (P,) on each device's shard, (K,)."""
        p = params.to(self.model.dtype)[None]
        ce = cross_entropy(self.model.logits(p, self.inputs[None]), self.labels[None])[0]
        sums = torch.zeros(self.num_devices, dtype=ce.dtype).index_add_(
            0, self._device_of_sample, ce
        )
        return (sums / torch.as_tensor(self.counts)).numpy().astype(np.float64)


class LocalTrainer(_RowTraining):
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
    train_shots : int, optional
        H, measurements per expectation for finite-shot parameter-shift gradients
        (:mod:`qfl_gym.learning.shots`); None: exact gradients (autograd).
    shot_rng : numpy.random.Generator, optional
        Generator of the measurement draws (required with ``train_shots``).
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
        train_shots: int | None = None,
        shot_rng: np.random.Generator | None = None,
    ) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0 or counts.min() < 1:
            raise ValueError(f"every device needs at least one sample, got counts {counts}")
        if optimizer not in OPTIMIZER_CLASSES:
            raise ValueError(
                f"unknown optimizer {optimizer!r}; valid: {', '.join(map(repr, OPTIMIZER_CLASSES))}"
            )
        if train_shots is not None:
            from qfl_gym.validation import check_int

            train_shots = check_int("train_shots", train_shots, low=1)
            if not isinstance(shot_rng, np.random.Generator):
                raise ValueError("train_shots need a numpy Generator shot_rng for the draws")
            if not hasattr(model, "probabilities"):
                raise ValueError(
                    f"train_shots need a simulator with outcome probabilities; "
                    f"{type(model).__name__} has none"
                )
        self.offsets = np.asarray(offsets, dtype=np.int64)
        K = counts.size
        batch = int(min(batch_size, counts.max()))
        steps = int(-(-counts.max() // batch))
        pos = np.arange(steps * batch)[None, :]
        self._valid = pos < counts[:, None]  # (K, S*B)
        self._beyond = ~self._valid[:, : counts.max()]
        dtype = model.dtype
        weight = self._valid.reshape(K, steps, batch).transpose(1, 0, 2)
        cnt = weight.sum(axis=2)  # (S, K)
        super().__init__(
            model=model,
            inputs=inputs,
            labels=labels,
            counts=counts,
            local_epochs=local_epochs,
            batch_size=batch,
            steps_per_epoch=steps,
            optimizer=optimizer,
            learning_rate=learning_rate,
            weight=torch.as_tensor(np.ascontiguousarray(weight), dtype=dtype),  # (S, K, B)
            inv_count=torch.as_tensor(1.0 / np.maximum(cnt, 1), dtype=dtype),
            active=torch.as_tensor((cnt > 0)[..., None], dtype=dtype),  # (S, K, 1)
            device_of_sample=torch.as_tensor(np.repeat(np.arange(K), counts)),
            train_shots=train_shots,
            shot_rng=shot_rng if train_shots is not None else None,
        )

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
        start = global_params.to(self.model.dtype).expand(self.num_devices, -1)
        return self._train_rows(start, partial(self._epoch_indices, rng))


class StackedTrainer(_RowTraining):
    """The devices of several :class:`LocalTrainer` trained as one batch.

    Rows ``[a_j, a_j + K_j)`` of the stacked ``(sum_j K_j, P)`` parameters are the
    devices of task ``j`` (``parts[j]``, e.g. the learner of sub-environment ``j`` of
    a vector env). Every step is one forward/backward pass over all of them, so the
    per-op overhead that dominates small circuits is paid once for all tasks.

    Each task keeps its own semantics: its minibatches come from its own trainer's
    :meth:`LocalTrainer._epoch_indices` and generator (same draws, same order), its
    steps past its own ``steps_per_epoch`` and its minibatch slots past its own
    ``batch_size`` are padding (weight 0, rows inactive: parameters and optimizer
    state untouched), and Adam is element-wise, so task ``j``'s rows end where
    ``parts[j].train`` would put them: bit for bit in the cases measured (steps
    simulate at least one task's device count of rows, see :meth:`_simulated_rows`),
    except the reported losses of a task whose minibatch size is below the stack's
    (a float sum over a padded minibatch groups its terms differently).

    Parameters
    ----------
    trainers : sequence of LocalTrainer
        At least one; all with the same simulator type, circuit (``model.spec``),
        dtype, ``local_epochs``, ``optimizer`` and ``learning_rate`` (their shards,
        batch sizes and step counts may differ). Each keeps its own inputs; the stack
        holds a concatenated copy (rebuild it when a task's trainer is replaced).
    """

    def __init__(self, trainers: Sequence[LocalTrainer]) -> None:
        parts = tuple(trainers)
        if not parts or not all(isinstance(t, LocalTrainer) for t in parts):
            raise ValueError(
                "trainers must be a non-empty sequence of LocalTrainer, got "
                f"{[type(t).__name__ for t in parts]}"
            )
        if any(t.train_shots is not None for t in parts):
            raise ValueError(
                "trainers with train_shots draw from their own shot generators: train them "
                "one by one (LocalTrainer.train), not stacked"
            )
        first = parts[0]
        for j, t in enumerate(parts[1:], 1):
            for what, a, b in (
                ("simulator", type(t.model), type(first.model)),
                ("model.spec", t.model.spec, first.model.spec),
                ("model.dtype", t.model.dtype, first.model.dtype),
                ("local_epochs", t.local_epochs, first.local_epochs),
                ("optimizer", t.optimizer, first.optimizer),
                ("learning_rate", t.learning_rate, first.learning_rate),
            ):
                if a != b:
                    raise ValueError(
                        f"trainers[{j}] has {what} {a!r}, trainers[0] has {b!r}: only "
                        "trainers of the same task settings can be stacked"
                    )
        self.parts = parts
        sizes = [int(t.inputs.shape[0]) for t in parts]
        #: first input row of each task in :attr:`inputs`
        self.input_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        counts = np.concatenate([t.counts for t in parts])
        rows = np.concatenate([[0], np.cumsum([t.num_devices for t in parts])])
        #: device rows of each task in the stacked parameters
        self.rows = [slice(int(a), int(b)) for a, b in itertools.pairwise(rows.tolist())]
        S = max(t.steps_per_epoch for t in parts)
        R, B = int(counts.size), max(t.batch_size for t in parts)
        dtype = first.model.dtype
        weight = torch.zeros((S, R, B), dtype=dtype)
        inv_count = torch.ones((S, R), dtype=dtype)
        active = torch.zeros((S, R, 1), dtype=dtype)
        for t, sl in zip(parts, self.rows, strict=True):
            s, b = t.steps_per_epoch, t.batch_size
            weight[:s, sl, :b] = t._weight
            inv_count[:s, sl] = t._inv_count
            active[:s, sl] = t._active
        # shards differ in size, so late steps have few active devices: simulate those
        # only (the stack's step count is the largest shard's, padding the others)
        min_rows = min(t.num_devices for t in parts)
        super().__init__(
            model=first.model,
            inputs=torch.cat([t.inputs for t in parts]),
            labels=torch.cat([t.labels for t in parts]),
            counts=counts,
            local_epochs=first.local_epochs,
            batch_size=B,
            steps_per_epoch=S,
            optimizer=first.optimizer,
            learning_rate=first.learning_rate,
            weight=weight,
            inv_count=inv_count,
            active=active,
            device_of_sample=torch.cat(
                [t._device_of_sample + sl.start for t, sl in zip(parts, self.rows, strict=True)]
            ),
            step_rows=[self._simulated_rows(a > 0, min_rows) for a in active[..., 0].unbind(0)],
        )

    @staticmethod
    def _simulated_rows(active: torch.Tensor, min_rows: int) -> torch.Tensor | None:
        """Rows to simulate at a step: the active ones (None: all of them).

        At least ``min_rows`` (a task's device count; inactive, zero-weight rows fill
        up): a task's own trainer always simulates its K devices together, and some
        torch kernels round differently (last bit, single precision) for smaller
        batches; with this the stacked rows match the task's own bit for bit on the
        circuits tested. A subset that saves little (over 3/4 of the rows) is not worth
        its gathers: then all rows are simulated.
        """
        rows = torch.nonzero(active).flatten()
        if rows.numel() < min_rows:
            fill = torch.nonzero(~active).flatten()[: min_rows - rows.numel()]
            rows = torch.sort(torch.cat([rows, fill])).values
        if 4 * rows.numel() > 3 * active.numel():
            return None
        return rows

    def _epoch_indices(self, rngs: Sequence[np.random.Generator]) -> torch.Tensor:
        """Minibatch indices ``(S, R, B)`` into :attr:`inputs`: every task's own draws."""
        idx = torch.zeros(
            (self.steps_per_epoch, self.num_devices, self.batch_size), dtype=torch.int64
        )
        for t, sl, start, rng in zip(self.parts, self.rows, self.input_starts, rngs, strict=True):
            idx[: t.steps_per_epoch, sl, : t.batch_size] = t._epoch_indices(rng) + int(start)
        return idx

    def train(
        self, global_params: Sequence[torch.Tensor], rngs: Sequence[np.random.Generator]
    ) -> list[tuple[torch.Tensor, np.ndarray]]:
        """E local epochs of every task's devices from its own global model.

        Parameters
        ----------
        global_params : sequence of torch.Tensor, shape (P,) each
            Task ``j``'s broadcast model.
        rngs : sequence of numpy.random.Generator
            Task ``j``'s shuffling generator (as passed to ``parts[j].train``).

        Returns
        -------
        list of (torch.Tensor (K_j, P), ndarray (K_j,))
            Per task, its devices' parameters and mean local losses, as
            ``parts[j].train(global_params[j], rngs[j])`` returns them.
        """
        n = len(self.parts)
        if len(global_params) != n or len(rngs) != n:
            raise ValueError(
                f"need one global model and one generator per task ({n}), got "
                f"{len(global_params)} and {len(rngs)}"
            )
        dtype = self.model.dtype
        start = torch.cat(
            [
                p.to(dtype).expand(t.num_devices, -1)
                for p, t in zip(global_params, self.parts, strict=True)
            ]
        )
        theta, loss = self._train_rows(start, partial(self._epoch_indices, rngs))
        return [(theta[sl], loss[sl]) for sl in self.rows]


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
    p = params.to(model.dtype)[None]
    if shots is not None:
        logits = _shot_logits(model, p, inputs[None], shots, rng)[0]
    else:
        logits = model.logits(p, inputs[None])[0]
    loss, accuracy = _loss_and_accuracy(logits, labels)
    return float(loss), float(accuracy)


@torch.no_grad()
def evaluate_stacked(
    model: VQCModel, params: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluate` (exact expectations) of ``m`` models on ``m`` datasets in one pass.

    Parameters
    ----------
    params : torch.Tensor, shape (m, P)
        Model ``j``'s parameters.
    inputs : torch.Tensor, shape (m, M, ...)
        Dataset ``j``'s encoded inputs (all of the same size ``M``).
    labels : torch.Tensor of int64, shape (m, M)

    Returns
    -------
    loss, accuracy : ndarray, shape (m,)
        Mean cross-entropy (nats) and accuracy of model ``j`` on dataset ``j``.
    """
    loss, accuracy = _loss_and_accuracy(model.logits(params.to(model.dtype), inputs), labels)
    return loss.numpy().astype(np.float64), accuracy.numpy().astype(np.float64)


def _loss_and_accuracy(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over the sample axis (the last of ``labels``)."""
    loss = cross_entropy(logits, labels).mean(dim=-1)
    accuracy = (logits.argmax(dim=-1) == labels).to(logits.dtype).mean(dim=-1)
    return loss, accuracy


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
