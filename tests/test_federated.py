"""FedAvg, delivery over the uplink, batched local training and the federated round."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_LEARNING
from hypothesis import given, settings
from hypothesis import strategies as st

from qfl_gym.learning import aggregation
from qfl_gym.learning.aggregation import AGGREGATION_RULES, aggregate, register_aggregation
from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.federated import FederatedLearner
from qfl_gym.learning.model import VQCSpec
from qfl_gym.learning.statevector import StatevectorVQC
from qfl_gym.learning.training import LocalTrainer
from qfl_gym.wireless.delivery import (
    delivery_probability,
    draw_delivery,
    packet_error_probability,
    upload_energy_j,
    upload_latency_s,
)

TINY = dict(TINY_LEARNING)


# --------------------------------------------------------------- aggregation
@settings(max_examples=30, deadline=None)
@given(K=st.integers(1, 12), P=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_fedavg_with_all_delivered_is_the_sample_weighted_mean(K, P, seed):
    rng = np.random.default_rng(seed)
    local = rng.normal(size=(K, P))
    counts = rng.integers(1, 100, K).astype(float)
    out = aggregate(local, counts, np.ones(K, bool), rng.normal(size=P))
    np.testing.assert_allclose(out, (counts[:, None] * local).sum(0) / counts.sum(), atol=1e-12)


def test_fedavg_averages_only_the_delivered_updates():
    local = np.array([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    out = aggregate(local, np.array([1.0, 3.0, 5.0]), np.array([True, True, False]), np.zeros(2))
    np.testing.assert_allclose(out, [2.5, 3.5])


def test_nothing_delivered_keeps_the_global_model():
    g = np.array([0.5, -1.0, 2.0])
    out = aggregate(np.ones((4, 3)), np.ones(4), np.zeros(4, bool), g)
    np.testing.assert_array_equal(out, g)
    assert out is not g


def test_aggregation_rules_are_pluggable_and_validated():
    def coordinate_median(deltas, weights, **_):
        return np.median(deltas, axis=0)

    register_aggregation("test-median", coordinate_median)
    try:
        local = np.array([[0.0], [1.0], [10.0]])
        out = aggregate(local, np.ones(3), np.ones(3, bool), np.zeros(1), rule="test-median")
        np.testing.assert_allclose(out, [1.0])
        assert LearningConfig(aggregation="test-median").aggregation == "test-median"
        with pytest.raises(ValueError, match="exists"):
            register_aggregation("test-median", coordinate_median)
    finally:
        AGGREGATION_RULES.pop("test-median")
    with pytest.raises(ValueError, match=r"unknown aggregation rule 'nope'.*fedavg"):
        aggregate(local, np.ones(3), np.ones(3, bool), np.zeros(1), rule="nope")
    with pytest.raises(ValueError, match="bool"):
        aggregate(local, np.ones(3), np.ones(3), np.zeros(1))
    with pytest.raises(ValueError, match="shape"):
        aggregate(local, np.ones(2), np.ones(3, bool), np.zeros(1))
    assert aggregation.mean(np.array([[1.0], [3.0]]), np.array([1.0, 9.0])) == 2.0


# ------------------------------------------------------------------ delivery
def test_a_device_at_zero_rate_never_delivers():
    rng = np.random.default_rng(0)
    rate = np.array([0.0, 5e6])
    sinr = np.array([0.0, 100.0])
    latency = upload_latency_s(rate, 1e5)
    assert latency[0] == np.inf and latency[1] == pytest.approx(0.02)
    per = packet_error_probability(sinr, 1.0)
    delivered = np.array([draw_delivery(rng, latency, per, deadline_s=1e9) for _ in range(2000)])
    assert not delivered[:, 0].any()
    assert delivered[:, 1].mean() == pytest.approx(np.exp(-1.0 / 100.0), abs=0.01)
    assert delivery_probability(rate, sinr, 1e5, 1e9, 1.0)[0] == 0.0
    # ... even with error-free packets
    assert not draw_delivery(rng, latency, np.zeros(2), 1e9)[0]


def test_packet_error_rate_and_deadline_follow_the_documented_formulas():
    m = 10 ** (0.023 / 10)  # Chen et al.: 0.023 dB
    sinr = np.array([m, 10.0, 100.0, 0.0])
    q = packet_error_probability(sinr, m)
    np.testing.assert_allclose(q[:3], 1.0 - np.exp(-m / sinr[:3]))
    assert q[0] == pytest.approx(1.0 - np.exp(-1.0))
    assert q[3] == 1.0
    np.testing.assert_array_equal(packet_error_probability(sinr, 0.0), 0.0)
    # deadline: on time iff bits / rate <= deadline
    p = delivery_probability(np.array([1e6, 0.99e6]), np.full(2, 1e9), 1e5, 0.1, m)
    assert p[0] > 0.99 and p[1] == 0.0
    energy = upload_energy_j(np.array([0.2, 0.2, 0.1]), np.array([0.05, 3.0, np.inf]), 0.1)
    np.testing.assert_allclose(energy, [0.01, 0.02, 0.01])


# ------------------------------------------------------------ local training
class _IdentityOrder:
    """A stand-in generator whose shuffles keep every shard in order."""

    def random(self, shape):
        return np.broadcast_to(np.arange(shape[-1]) / shape[-1], shape).copy()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_training_equals_training_each_device_alone(optimizer):
    """Vectorized training over devices with unequal shards = K separate trainings.

    Shards of 5, 11 and 2 samples with batch size 4 run 2, 3 and 1 steps per epoch, so
    devices are masked out of later steps; per-device optimizer state must not leak.
    """
    spec = VQCSpec(3, 2, 3, "expval", 3.0)
    model = StatevectorVQC(spec, torch.float64)
    rng = np.random.default_rng(0)
    counts = np.array([5, 11, 2])
    angles = rng.uniform(0, np.pi, (counts.sum(), 3))
    labels = torch.as_tensor(rng.integers(0, 3, counts.sum()))
    states = model.encode(angles)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    global_params = torch.as_tensor(spec.init_params(rng))
    kw = {"local_epochs": 2, "batch_size": 4, "optimizer": optimizer, "learning_rate": 0.1}
    batched = LocalTrainer(model, states, labels, counts, offsets, **kw)
    params, loss = batched.train(global_params, _IdentityOrder())
    for k in range(3):
        rows = slice(offsets[k], offsets[k] + counts[k])
        alone = LocalTrainer(model, states[rows], labels[rows], counts[k : k + 1], [0], **kw)
        p_k, loss_k = alone.train(global_params, _IdentityOrder())
        np.testing.assert_allclose(params[k], p_k[0], atol=1e-12)
        np.testing.assert_allclose(loss[k], loss_k[0], atol=1e-12)
        assert not torch.allclose(params[k], global_params)


# ------------------------------------------------------------------- rounds
def test_round_with_nothing_delivered_leaves_the_model_unchanged():
    fl = FederatedLearner(LearningConfig(**TINY), 4)
    start = fl.reset(np.random.default_rng(0))
    before = fl.global_params.clone()
    result = fl.run_round(np.zeros(4, bool))
    assert torch.equal(fl.global_params, before)
    assert result.global_loss == start["global_loss"]
    assert result.local_loss.shape == (4,) and np.all(result.local_loss > 0)


def test_round_with_all_delivered_sets_the_weighted_mean_of_local_models():
    fl = FederatedLearner(LearningConfig(**TINY), 4)
    fl.reset(np.random.default_rng(1))
    local, _ = fl.local_train()
    counts = fl.sample_counts
    assert counts.std() > 0  # Dirichlet: unequal weights
    fl.aggregate(local, np.ones(4, bool))
    expected = (torch.as_tensor(counts, dtype=torch.float64)[:, None] * local).sum(0)
    np.testing.assert_allclose(fl.global_params, expected / counts.sum(), atol=1e-12)


def test_pennylane_backend_runs_the_same_round():
    """The config switch to the PennyLane device path gives the same training."""
    results = []
    for backend in ("torch", "default.qubit"):
        fl = FederatedLearner(LearningConfig(**TINY, backend=backend), 3)
        fl.reset(np.random.default_rng(4))
        r = fl.run_round(np.array([True, False, True]))
        results.append((fl.global_params.clone(), r.local_loss, r.global_loss))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-9)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-9)
    assert results[0][2] == pytest.approx(results[1][2], abs=1e-9)


def test_fixed_data_seed_fixes_task_across_resets():
    fl = FederatedLearner(LearningConfig(**TINY, data_seed=3), 4)
    a = fl.reset(np.random.default_rng(0))
    part_a, params_a = fl.partition.indices.copy(), fl.global_params.clone()
    b = fl.reset(np.random.default_rng(99))
    np.testing.assert_array_equal(fl.partition.indices, part_a)
    assert torch.equal(fl.global_params, params_a) and a["global_loss"] == b["global_loss"]
    fl2 = FederatedLearner(LearningConfig(**TINY), 4)
    fl2.reset(np.random.default_rng(0))
    p0 = fl2.partition.indices.copy()
    fl2.reset(np.random.default_rng(1))
    assert not np.array_equal(fl2.partition.indices, p0)


def test_learner_rejects_bad_input():
    with pytest.raises(ValueError, match="num_devices"):
        FederatedLearner(LearningConfig(**TINY), 500)
    fl = FederatedLearner(LearningConfig(**TINY), 2)
    with pytest.raises(RuntimeError, match="reset"):
        fl.run_round(np.ones(2, bool))
    fl.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match="delivered"):
        fl.run_round(np.ones(3, bool))
