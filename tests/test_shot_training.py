"""Finite-shot parameter-shift gradients in local training (QuantumNoiseConfig.train_shots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfl_gym.learning.model import VQCSpec, cross_entropy
from qfl_gym.learning.noise import QuantumNoiseConfig
from qfl_gym.learning.shots import shift_jacobian, shot_gradient
from qfl_gym.learning.statevector import StatevectorVQC
from qfl_gym.learning.training import LocalTrainer, torch_threads

K, B = 3, 4


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny circuits: a second thread only waits on the shared cores."""
    with torch_threads(1):
        yield


def problem(readout="expval", seed=0):
    spec = VQCSpec(3, 2, 3 if readout == "expval" else 4, readout=readout)
    model = StatevectorVQC(spec, torch.float64)
    rng = np.random.default_rng(seed)
    params = torch.as_tensor(np.stack([spec.init_params(rng) for _ in range(K)]))
    inputs = model.encode(rng.uniform(0, np.pi, (K * B, 3))).reshape(K, B, -1)
    labels = torch.as_tensor(rng.integers(0, spec.num_classes, (K, B)))
    weight = torch.ones((K, B), dtype=torch.float64)
    weight[2, 3] = 0.0  # a padding sample
    inv_count = 1.0 / weight.sum(dim=1)
    return model, params, inputs, labels, weight, inv_count


def exact_jacobian(model, params, inputs):
    """Autograd Jacobian of <Z_q> w.r.t. the rotation angles, (K, B, m, P_rot)."""
    p = params.clone().requires_grad_(True)
    z = model.expvals(p, inputs)
    rows = []
    for b in range(B):
        for q in range(z.shape[-1]):
            (g,) = torch.autograd.grad(z[:, b, q].sum(), p, retain_graph=True)
            rows.append(g[:, : model.spec.num_rotation_parameters])
    return z.detach().numpy(), torch.stack(rows, 1).reshape(K, B, z.shape[-1], -1).numpy()


def exact_gradient(model, params, inputs, labels, weight, inv_count):
    p = params.clone().requires_grad_(True)
    ce = cross_entropy(model.logits(p, inputs), labels)
    total = ((ce * weight).sum(dim=1) * inv_count).sum()
    (g,) = torch.autograd.grad(total, p)
    return g.numpy()


def test_parameter_shift_with_many_shots_is_the_exact_jacobian():
    model, params, inputs, *_ = problem()
    z, jac = exact_jacobian(model, params, inputs)
    z_hat, jac_hat = shift_jacobian(model, params, inputs, 10**8, np.random.default_rng(0))
    np.testing.assert_allclose(z_hat, z, atol=1e-3)
    np.testing.assert_allclose(jac_hat, jac, atol=1e-3)


@pytest.mark.parametrize("readout", ["expval", "linear"])
def test_shot_gradient_is_unbiased_for_a_loss_linear_in_the_expectations(readout):
    """Mean over N draws within 5 standard errors (from the draws' own variance)."""
    model, params, inputs, *_ = problem(readout)
    _, jac = exact_jacobian(model, params, inputs)
    v = np.random.default_rng(1).normal(size=jac.shape[:3])  # fixed upstream dL/dz
    exact = np.einsum("kbm,kbmp->kp", v, jac)
    rng = np.random.default_rng(2)
    draws = np.stack(
        [
            np.einsum("kbm,kbmp->kp", v, shift_jacobian(model, params, inputs, 5, rng)[1])
            for _ in range(600)
        ]
    )
    stderr = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - exact) <= 5.0 * stderr + 1e-12)
    assert stderr.max() > 0.0  # the draws do vary


def test_shot_gradient_variance_falls_as_one_over_shots():
    model, params, inputs, labels, weight, inv_count = problem()
    variance = {}
    for shots in (10, 40):
        rng = np.random.default_rng(shots)
        draws = np.stack(
            [
                shot_gradient(model, params, inputs, labels, weight, inv_count, shots, rng)[
                    0
                ].numpy()
                for _ in range(400)
            ]
        )
        variance[shots] = draws.var(axis=0, ddof=1).sum()
    assert 3.0 < variance[10] / variance[40] < 5.3  # 4 expected


def test_cross_entropy_shot_gradient_approaches_the_exact_one():
    model, params, inputs, labels, weight, inv_count = problem("linear")
    exact = exact_gradient(model, params, inputs, labels, weight, inv_count)
    rng = np.random.default_rng(3)
    est, loss = shot_gradient(model, params, inputs, labels, weight, inv_count, 10**8, rng)
    np.testing.assert_allclose(est.numpy(), exact, atol=2e-3)
    assert est[2].abs().sum() > 0 and loss.shape == (K,)
    coarse = shot_gradient(model, params, inputs, labels, weight, inv_count, 1, rng)[0]
    assert np.abs(coarse.numpy() - exact).max() > 1e-2  # one shot is far from exact


def test_local_trainer_with_shots_is_reproducible_and_learns_differently():
    model, _, inputs, labels, *_ = problem()
    flat_inputs = inputs.reshape(K * B, -1)
    flat_labels = labels.reshape(-1)
    counts, offsets = np.full(K, B), np.arange(K) * B
    start = torch.as_tensor(model.spec.init_params(np.random.default_rng(5)))

    def run(shots, seed=0):
        trainer = LocalTrainer(
            model,
            flat_inputs,
            flat_labels,
            counts,
            offsets,
            batch_size=2,
            train_shots=shots,
            shot_rng=np.random.default_rng(seed) if shots else None,
        )
        return trainer.train(start, np.random.default_rng(9))

    a, loss_a = run(20)
    b, loss_b = run(20)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(loss_a, loss_b)
    c, _ = run(20, seed=1)
    exact, _ = run(None)
    assert not torch.equal(a, c) and not torch.equal(a, exact)
    assert (a - exact).abs().max() < 1.0  # both moved from the same start


def test_train_shots_are_validated_and_reach_the_env():
    with pytest.raises(ValueError, match="train_shots"):
        QuantumNoiseConfig(train_shots=0)
    assert not QuantumNoiseConfig(train_shots=40).is_ideal
    import gymnasium as gym

    import qfl_gym  # noqa: F401

    env = gym.make("qfl_gym/QFL-v0", scenario="small", train_shots=40, num_devices=3, rounds=2)
    env.reset(seed=0)
    trainer = env.unwrapped.learner.trainer
    assert trainer.train_shots == 40 and trainer.shot_rng is not None
    _, _, _, _, info = env.step(env.action_space.sample())
    assert 0.0 <= info["global_accuracy"] <= 1.0
    env.close()
