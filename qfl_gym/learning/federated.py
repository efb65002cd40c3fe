r"""Federated learning of the VQC: data, devices, rounds and the global model's state.

One round (:meth:`FederatedLearner.run_round`), given which uploads the uplink
delivered (decided in :mod:`qfl_gym.wireless.delivery`):

1. Broadcast: every device starts from the global parameters :math:`\theta^t`.
2. Local training: E epochs of minibatch Adam/SGD on each device's shard, all devices
   in one batched computation (:mod:`qfl_gym.learning.training`).
3. Aggregation over the delivered updates with the configured rule, FedAvg by default:
   :math:`\theta^{t+1} = \sum_{k \in \mathcal{D}} n_k \theta_k / \sum_{k\in\mathcal{D}} n_k`;
   nothing delivered -> :math:`\theta^{t+1} = \theta^t` (:mod:`.aggregation`).
4. Evaluation of :math:`\theta^{t+1}` on the global test set: mean cross-entropy and
   accuracy.

Every device trains every round; only delivered updates reach the server.

Security options (off by default; with them off a round is exactly the above):
malicious devices poison their uploads or their data (:mod:`.attacks`), honest devices
clip their update deltas and DP noise is added on the device or at the server
(:mod:`.privacy`), and the rule may be a robust one (``median``, ``trimmed-mean``,
``krum``; :mod:`.aggregation`). Order inside step 3: poison (malicious rows) ->
clip (+ local noise) (honest rows) -> aggregate (central DP: noisy uniform mean) ->
account the round's privacy loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qfl_gym.learning.aggregation import aggregate
from qfl_gym.learning.attacks import (
    PoisoningConfig,
    check_robustness,
    choose_attackers,
    flip_labels,
    poison_updates,
)
from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.data import PreparedData, check_enough_samples, prepare_data
from qfl_gym.learning.model import VQCSpec
from qfl_gym.learning.noise import QuantumNoiseConfig
from qfl_gym.learning.partition import Partition, partition_samples
from qfl_gym.learning.privacy import DPUpdates, PrivacyConfig, check_privacy_rule
from qfl_gym.learning.training import (
    LocalTrainer,
    StackedTrainer,
    evaluate,
    evaluate_stacked,
    make_model,
    torch_threads,
)


@dataclass(frozen=True, eq=False)
class RoundResult:
    """Outcome of one federated round.

    Attributes
    ----------
    delivered : ndarray of bool, shape (K,)
        Whose update the server aggregated.
    local_loss : ndarray, shape (K,)
        Every device's mean local training loss this round (nats).
    global_loss : float
        Test cross-entropy of the new global model (nats).
    global_accuracy : float
        Test accuracy of the new global model, in [0, 1].
    """

    delivered: np.ndarray
    local_loss: np.ndarray
    global_loss: float
    global_accuracy: float


class FederatedLearner:
    """The federated VQC task of K devices (data, model, local training, aggregation).

    Parameters
    ----------
    config : LearningConfig
        Data, model and training settings.
    num_devices : int
        K.
    privacy : PrivacyConfig, optional
        Device-level DP of the updates (default: off).
    poisoning : PoisoningConfig, optional
        Malicious devices and the robust rules' tolerance (default: no attackers).
    quantum_noise : QuantumNoiseConfig, optional
        Quantum noise and hardware limits (:mod:`qfl_gym.learning.noise`; default:
        ideal): noise channels run the density-matrix simulator, ``shots`` make
        :meth:`evaluate` estimate expectations from measurements (drawn from a child
        generator spawned from the reset generator after the security ones, so
        minibatch shuffling is the same for any ``shots``), and devices outside
        ``qubit_budget`` (:attr:`capable` False) are never aggregated.

    Notes
    -----
    :meth:`reset` draws the train/test split, the partition and the initial model from
    its generator (or from ``config.data_seed`` when set, then fixed across resets) and
    keeps the generator for minibatch shuffling. With attackers or DP, two generators
    are spawned from it (``rng.spawn(2)``, which draws nothing from it): one chooses
    the attackers and their random updates, one draws the DP noise.
    """

    def __init__(
        self,
        config: LearningConfig,
        num_devices: int,
        *,
        privacy: PrivacyConfig | None = None,
        poisoning: PoisoningConfig | None = None,
        quantum_noise: QuantumNoiseConfig | None = None,
    ) -> None:
        if not isinstance(config, LearningConfig):
            raise ValueError(f"config must be a LearningConfig, got {type(config).__name__}")
        check_enough_samples(config, num_devices)
        privacy = PrivacyConfig() if privacy is None else privacy
        poisoning = PoisoningConfig() if poisoning is None else poisoning
        if not isinstance(privacy, PrivacyConfig):
            raise ValueError(f"privacy must be a PrivacyConfig, got {type(privacy).__name__}")
        if not isinstance(poisoning, PoisoningConfig):
            raise ValueError(f"poisoning must be a PoisoningConfig, got {type(poisoning).__name__}")
        check_privacy_rule(privacy, config.aggregation)
        self.num_attackers = check_robustness(config.aggregation, poisoning, num_devices)
        self.privacy = privacy
        self.poisoning = poisoning
        self.dp = DPUpdates(privacy, num_devices) if privacy.enabled else None
        self.malicious = np.zeros(int(num_devices), dtype=bool)
        self._attack_rng: np.random.Generator | None = None
        noise = QuantumNoiseConfig() if quantum_noise is None else quantum_noise
        if not isinstance(noise, QuantumNoiseConfig):
            raise ValueError(
                f"quantum_noise must be a QuantumNoiseConfig, got {type(noise).__name__}"
            )
        noise.check_learning(config, num_devices)
        self.quantum_noise = noise
        #: (K,) bool: devices whose hardware has the qubits to run the VQC
        self.capable = noise.capable_devices(config.n_qubits, num_devices)
        self._shot_rng: np.random.Generator | None = None
        self.config = config
        self.num_devices = int(num_devices)
        self.spec = VQCSpec.from_config(config)
        self.model = make_model(self.spec, config.backend, config.precision, noise)
        self.data: PreparedData | None = None
        self.partition: Partition | None = None
        self.trainer: LocalTrainer | None = None
        self._fixed: tuple[PreparedData, Partition, np.ndarray] | None = None
        self._rng: np.random.Generator | None = None
        self.global_params: torch.Tensor | None = None
        self.round = 0

    # ---------------------------------------------------------------- state
    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """New data split, partition and initial model; returns the initial metrics.

        Returns
        -------
        dict
            ``global_loss``, ``global_accuracy`` (initial model on the test set) and
            ``local_loss`` (K,): the initial model's loss on each device's shard.
        """
        with torch_threads(self.config.torch_threads):
            return self._reset(rng)

    def _reset(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self.config
        if cfg.data_seed is None:
            data, part, init = self._draw_task(rng)
        else:
            if self._fixed is None:
                self._fixed = self._draw_task(np.random.default_rng(cfg.data_seed))
            data, part, init = self._fixed
        self._rng = rng
        self.data, self.partition = data, part
        model = self.model
        order = part.indices
        labels = data.y_train[order]
        if self.num_attackers or self.dp is not None:
            self._attack_rng, dp_rng = rng.spawn(2)
            self.malicious = choose_attackers(self._attack_rng, self.poisoning, self.num_devices)
            if self.poisoning.attack == "label-flip":
                labels = flip_labels(
                    labels, cfg.num_classes, self.malicious, part.counts, part.offsets
                )
            if self.dp is not None:
                self.dp.reset(dp_rng)
        if self.quantum_noise.shots is not None:  # spawning draws nothing from rng
            (self._shot_rng,) = rng.spawn(1)
        train_shot_rng = None
        if self.quantum_noise.train_shots is not None:  # spawned after the evaluation one
            (train_shot_rng,) = rng.spawn(1)
        self.trainer = LocalTrainer(
            model,
            model.encode(data.x_train[order]),
            torch.as_tensor(labels),
            part.counts,
            part.offsets,
            local_epochs=cfg.local_epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            learning_rate=cfg.learning_rate,
            train_shots=self.quantum_noise.train_shots,
            shot_rng=train_shot_rng,
        )
        self._test_inputs = model.encode(data.x_test)
        self._test_labels = torch.as_tensor(data.y_test)
        self.global_params = torch.as_tensor(init, dtype=torch.float64).clone()  # server: float64
        self.round = 0
        loss, acc = self.evaluate()
        return {
            "global_loss": loss,
            "global_accuracy": acc,
            "local_loss": self.trainer.shard_loss(self.global_params),
        }

    def _draw_task(self, rng: np.random.Generator) -> tuple[PreparedData, Partition, np.ndarray]:
        cfg = self.config
        data = prepare_data(cfg, rng)
        part = partition_samples(
            data.y_train,
            self.num_devices,
            rng,
            scheme=cfg.partition,
            alpha=cfg.dirichlet_alpha,
            samples_per_device=cfg.samples_per_device,
            what=f"dataset {cfg.dataset!r} (classes {cfg.class_labels})",
        )
        return data, part, self.spec.init_params(rng)

    # ---------------------------------------------------------------- round
    @property
    def sample_counts(self) -> np.ndarray:
        """Training samples per device ``n_k`` (K,), the FedAvg weights."""
        self.check_reset()
        return self.partition.counts

    def local_train(self) -> tuple[torch.Tensor, np.ndarray]:
        """Every device's local training from the global model: ``(K, P)``, loss (K,)."""
        self.check_reset()
        with torch_threads(self.config.torch_threads):
            return self.trainer.train(self.global_params, self._rng)

    def aggregate(self, local_params: torch.Tensor, delivered: np.ndarray) -> None:
        """Replace the global model by the aggregate of the delivered updates.

        With attackers or DP: malicious rows are poisoned, honest rows clipped (and
        noised locally), then the rule (or central DP's noisy mean) aggregates the
        delivered rows and the round is charged to the privacy accountant.
        """
        self.check_reset()
        local = local_params.detach().to(torch.float64).numpy()
        delivered = np.asarray(delivered)
        if self.quantum_noise.qubit_budget is not None:  # too few qubits: no update
            delivered = delivered & self.capable
        rule = self.config.aggregation
        options = self.poisoning.rule_options(rule)
        glob = self.global_params.numpy()
        dp = self.dp
        if not self.num_attackers and dp is None:
            new = aggregate(
                local,
                self.partition.counts.astype(float),
                delivered,
                glob,
                rule=rule,
                **options,
            )
            self.global_params = torch.from_numpy(new)
            return
        deltas = local - glob
        if self.num_attackers and self.poisoning.update_attack:
            p = self.poisoning
            deltas = poison_updates(
                deltas, self.malicious, p.attack, p.attack_scale, self._attack_rng
            )
        if dp is not None:  # model poisoners skip the honest client's clipping and noise
            follows = ~self.malicious if self.poisoning.update_attack else np.ones_like(delivered)
            deltas = dp.privatize(deltas, follows)
        if dp is not None and dp.central:
            new = glob + dp.noisy_mean(deltas, delivered)
        else:
            weights = self.partition.counts.astype(float)
            new = aggregate(glob + deltas, weights, delivered, glob, rule=rule, **options)
        if dp is not None:
            dp.account(delivered)
        self.global_params = torch.from_numpy(new)

    @property
    def dp_epsilon(self) -> float | None:
        """Largest device-level epsilon at ``dp_delta`` so far (None without DP)."""
        return None if self.dp is None else self.dp.epsilon

    @property
    def dp_epsilon_per_device(self) -> np.ndarray | None:
        """Each device's epsilon at ``dp_delta`` so far, (K,) (None without DP)."""
        return None if self.dp is None else self.dp.epsilon_per_device

    def evaluate(self) -> tuple[float, float]:
        """Test loss (nats) and accuracy of the global model."""
        self.check_reset()
        with torch_threads(self.config.torch_threads):
            return evaluate(
                self.model,
                self.global_params,
                self._test_inputs,
                self._test_labels,
                self.quantum_noise.shots,
                self._shot_rng,
            )

    def run_round(self, delivered: np.ndarray) -> RoundResult:
        """One round: broadcast, local training, aggregation of ``delivered`` (K,), test."""
        delivered = self.check_delivered(delivered)
        local_params, local_loss = self.local_train()
        self.aggregate(local_params, delivered)
        return self.close_round(local_loss, delivered, *self.evaluate())

    def check_delivered(self, delivered: Any) -> np.ndarray:
        """``delivered`` as a (K,) bool array, or ``ValueError`` saying what was expected."""
        delivered = np.asarray(delivered)
        if delivered.shape != (self.num_devices,) or delivered.dtype != np.bool_:
            raise ValueError(
                f"delivered must be a bool array of shape ({self.num_devices},), got "
                f"{delivered.dtype} {delivered.shape}"
            )
        return delivered

    def close_round(
        self, local_loss: np.ndarray, delivered: np.ndarray, loss: float, acc: float
    ) -> RoundResult:
        """Count the round (its model aggregated and evaluated) and report it."""
        self.round += 1
        if self.quantum_noise.qubit_budget is not None:
            delivered = delivered & self.capable
        return RoundResult(delivered.copy(), local_loss, loss, acc)

    def check_reset(self) -> None:
        """``RuntimeError`` unless :meth:`reset` has run."""
        if self.trainer is None:
            raise RuntimeError("call FederatedLearner.reset(rng) first")

    @property
    def rng(self) -> np.random.Generator | None:
        """The generator of the minibatch draws (set by :meth:`reset`)."""
        return self._rng

    @property
    def test_inputs(self) -> torch.Tensor:
        """The encoded test inputs of the global model's evaluation."""
        return self._test_inputs

    @property
    def test_labels(self) -> torch.Tensor:
        """The test labels, (T,) int."""
        return self._test_labels


class LearnerBatch:
    """Federated rounds of several independent learners, local training as one batch.

    The learners (e.g. one per sub-environment of a vector env) must share their
    task settings (one :class:`LearningConfig` and number of devices); their data,
    partitions, models and generators are their own. :meth:`run_round` trains the
    devices of every learner it is given in one :class:`StackedTrainer` pass per
    minibatch step (each learner's minibatches still drawn from its own generator),
    then aggregates and evaluates each learner on its own, exactly as
    :meth:`FederatedLearner.run_round` does (privacy, poisoning, robust rules, shots
    and qubit budgets included). So learner ``j`` ends the round where its own
    ``run_round`` would put it, to floating-point rounding of the batched training.

    Without measurement shots the new global models are also evaluated together
    (:func:`~qfl_gym.learning.training.evaluate_stacked`, one pass over every
    learner's test set); with shots each learner evaluates on its own (its own shot
    generator).

    The stacked trainer and test sets are cached and rebuilt when the set of learners
    or one of their trainers changes (a learner's :meth:`FederatedLearner.reset`
    replaces its trainer and data).
    """

    def __init__(self) -> None:
        self._stacked: StackedTrainer | None = None
        self._tests: tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor] | None = None

    def run_round(
        self, learners: Sequence[FederatedLearner], delivered: Sequence[np.ndarray]
    ) -> list[RoundResult]:
        """One round of every learner; ``delivered[j]`` (K,) bool is learner ``j``'s.

        Returns
        -------
        list of RoundResult
            One per learner, as its :meth:`FederatedLearner.run_round` returns it.
        """
        if len(learners) != len(delivered):
            raise ValueError(
                f"need one delivered mask per learner ({len(learners)}), got {len(delivered)}"
            )
        if not learners:
            return []
        if len(learners) == 1 or learners[0].quantum_noise.train_shots is not None:
            # nothing to stack, or finite-shot gradients: each learner its own draws
            return [learner.run_round(d) for learner, d in zip(learners, delivered, strict=True)]
        masks = [learner.check_delivered(d) for learner, d in zip(learners, delivered, strict=True)]
        for learner in learners:
            learner.check_reset()
        config = learners[0].config
        with torch_threads(config.torch_threads):
            stacked = self._stack([learner.trainer for learner in learners])
            trained = stacked.train(
                [learner.global_params for learner in learners],
                [learner.rng for learner in learners],
            )
            for learner, (params, _), mask in zip(learners, trained, masks, strict=True):
                learner.aggregate(params, mask)
            metrics = self._evaluate(learners)
            return [
                learner.close_round(loss, mask, *metric)
                for learner, (_, loss), mask, metric in zip(
                    learners, trained, masks, metrics, strict=True
                )
            ]

    def _evaluate(self, learners: Sequence[FederatedLearner]) -> list[tuple[float, float]]:
        """Test loss and accuracy of every learner's global model."""
        inputs = tuple(learner.test_inputs for learner in learners)
        if learners[0].quantum_noise.shots is not None or len({x.shape for x in inputs}) != 1:
            return [learner.evaluate() for learner in learners]
        cached = self._tests
        if (
            cached is None
            or len(cached[0]) != len(inputs)
            or any(a is not b for a, b in zip(cached[0], inputs, strict=True))
        ):
            labels = torch.stack([learner.test_labels for learner in learners])
            cached = self._tests = (inputs, torch.stack(inputs), labels)
        params = torch.stack([learner.global_params for learner in learners])
        loss, acc = evaluate_stacked(learners[0].model, params, cached[1], cached[2])
        return list(zip(loss.tolist(), acc.tolist(), strict=True))

    def _stack(self, trainers: list[LocalTrainer]) -> StackedTrainer:
        cached = self._stacked
        if (
            cached is None
            or len(cached.parts) != len(trainers)
            or any(a is not b for a, b in zip(cached.parts, trainers, strict=True))
        ):
            cached = self._stacked = StackedTrainer(trainers)
        return cached
