"""Quantum noise and hardware limits of the VQC.

The batched density-matrix fast path equals PennyLane's ``default.mixed`` with the same
channels (outputs and gradients), shot estimates are unbiased with the right variance,
qubit budgets exclude devices, the env options are deterministic and leave the channel
stream alone, and bad input names the field and the limit.
"""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pennylane as qml
import pytest
import torch
from conftest import TINY_LEARNING

import qfl_gym  # noqa: F401
from qfl_gym.envs.qfl_scenario import QFL_PRESETS, qfl_scenario
from qfl_gym.learning.circuit import PennyLaneVQC
from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.density import DensityMatrixVQC
from qfl_gym.learning.federated import FederatedLearner
from qfl_gym.learning.model import VQCSpec, cross_entropy
from qfl_gym.learning.noise import (
    QuantumNoiseConfig,
    apply_channel_numpy,
    coherence_table,
    layer_channel,
    marginal_probabilities,
    sample_expvals,
)
from qfl_gym.learning.statevector import StatevectorVQC
from qfl_gym.learning.training import LocalTrainer, evaluate

ENV_ID = "qfl_gym/QFL-v0"
TOL = 1e-6
NOISE = QuantumNoiseConfig(depolarizing_p=0.07, amplitude_damping_gamma=0.11)
TINY = dict(TINY_LEARNING)


def _case(spec: VQCSpec, K: int, B: int, seed: int):
    rng = np.random.default_rng(seed)
    params = np.stack([spec.init_params(rng) for _ in range(K)])
    if spec.readout == "linear":
        params[:, -spec.num_classes :] = rng.normal(size=(K, spec.num_classes))
    angles = rng.uniform(0.0, np.pi, (K * B, spec.n_qubits))
    labels = torch.as_tensor(rng.integers(0, spec.num_classes, (K, B)))
    return params, angles, labels


def _run(model, params, angles, labels, K, B):
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    inputs = model.encode(angles)
    inputs = inputs.reshape(K, B, *inputs.shape[1:])
    expvals = model.expvals(p, inputs)
    (grad,) = torch.autograd.grad(cross_entropy(model.spec.logits(p, expvals), labels).sum(), p)
    with torch.no_grad():
        probs = model.probabilities(p, inputs)
    return expvals.detach(), grad, probs


# ------------------------------------------------------ density path == PennyLane
@pytest.mark.parametrize(
    "n_qubits,n_layers,num_classes,readout,max_block,B",
    [
        (2, 1, 2, "expval", 4, 4),  # B > m: Heisenberg picture (observables evolve)
        (3, 3, 3, "expval", 4, 2),  # B < m: Schroedinger picture; ranges 1, 2, 1
        (4, 2, 4, "linear", 4, 6),  # the small preset's width, one matrix per layer
        (4, 2, 3, "expval", 2, 5),  # two blocks: einsum path, both pictures' code
    ],
)
def test_density_path_equals_pennylane_default_mixed(
    n_qubits, n_layers, num_classes, readout, max_block, B
):
    spec = VQCSpec(n_qubits, n_layers, num_classes, readout, logit_scale=3.0)
    K = 2
    params, angles, labels = _case(spec, K, B, seed=10 * n_qubits + n_layers)
    fast = DensityMatrixVQC(spec, NOISE, torch.float64, max_block_qubits=max_block)
    ref = PennyLaneVQC(spec, "default.mixed", NOISE)
    e1, g1, p1 = _run(fast, params, angles, labels, K, B)
    e2, g2, p2 = _run(ref, params, angles, labels, K, B)
    assert e1.shape == (K, B, spec.num_measured) and p1.shape == (K, B, 2**n_qubits)
    np.testing.assert_allclose(e1, e2, atol=TOL, rtol=0)
    np.testing.assert_allclose(g1, g2, atol=TOL, rtol=0)
    np.testing.assert_allclose(p1, p2, atol=TOL, rtol=0)
    # the noise matters: the ideal circuit gives other values
    ideal, _, _ = _run(StatevectorVQC(spec, torch.float64), params, angles, labels, K, B)
    assert (e1 - ideal).abs().max() > 1e-2


def test_both_pictures_and_the_ideal_limit_agree():
    spec = VQCSpec(3, 2, 2, "expval", 3.0)
    params, angles, _ = _case(spec, 2, 6, seed=1)
    noisy = DensityMatrixVQC(spec, NOISE, torch.float64)
    p = torch.as_tensor(params)
    x = noisy.encode(angles).reshape(2, 6, 3, 2, 2)
    heisenberg = noisy.expvals(p, x)  # B=6 > m=2
    schroedinger = noisy.probabilities(p, x) @ noisy._zsign
    np.testing.assert_allclose(heisenberg, schroedinger, atol=1e-12)
    # zero noise: the density matrix is the pure state of the fast state-vector path
    clean = DensityMatrixVQC(spec, QuantumNoiseConfig(), torch.float64)
    sv = StatevectorVQC(spec, torch.float64)
    psi = sv.encode(angles).reshape(2, 6, -1)
    xc = clean.encode(angles).reshape(2, 6, 3, 2, 2)
    np.testing.assert_allclose(clean.expvals(p, xc), sv.expvals(p, psi), atol=1e-12)


@pytest.mark.parametrize("p,gamma", [(0.2, 0.0), (0.0, 0.3), (0.1, 0.25), (1.0, 1.0)])
def test_layer_channel_is_pennylanes_kraus_channel_and_its_adjoint(p, gamma):
    rng = np.random.default_rng(0)
    n = 3
    A = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    rho = A @ A.conj().T
    rho /= np.trace(rho)
    expected = rho
    kraus = [
        *qml.AmplitudeDamping.compute_kraus_matrices(gamma),
        *qml.DepolarizingChannel.compute_kraus_matrices(p),
    ]
    for q in range(n):  # AD then DP on every qubit, via the Kraus matrices
        for ops in (kraus[:2], kraus[2:]):
            full = [np.kron(np.kron(np.eye(2**q), k), np.eye(2 ** (n - q - 1))) for k in ops]
            expected = sum(k @ expected @ k.conj().T for k in full)
    M, s = layer_channel(p, gamma)
    table = coherence_table(n, s)
    out = apply_channel_numpy(rho.copy(), n, M, table)
    np.testing.assert_allclose(out, expected, atol=1e-8)  # PennyLane's Kraus floor sqrt(0) -> 1e-7
    # Heisenberg picture: Tr(X N(rho)) = Tr(N^dagger(X) rho)
    X = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    X = X + X.conj().T
    back = apply_channel_numpy(X.copy(), n, M, table, adjoint=True)
    assert np.trace(X @ out) == pytest.approx(np.trace(back @ rho), abs=1e-12)


# ------------------------------------------------------------------- shots
def test_shot_estimates_are_unbiased_with_binomial_variance():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(16), size=3)  # 4 qubits, 3 samples
    marginal = marginal_probabilities(probs, 4, 2)  # first two wires
    exact = marginal @ np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)
    shots = 50
    draws = np.stack([sample_expvals(marginal, shots, rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), exact, atol=0.01)
    np.testing.assert_allclose(draws.var(0), (1 - exact**2) / shots, rtol=0.1)
    assert np.all(np.abs(draws * shots - np.round(draws * shots)) < 1e-9)  # counts/shots


def test_evaluation_with_shots_is_seeded_and_converges_to_the_exact_value():
    spec = VQCSpec(3, 2, 3, "expval", 5.0)
    model = StatevectorVQC(spec, torch.float64)
    rng = np.random.default_rng(3)
    params = torch.as_tensor(spec.init_params(rng))
    inputs = model.encode(rng.uniform(0, np.pi, (400, 3)))
    labels = torch.as_tensor(rng.integers(0, 3, 400))
    exact = evaluate(model, params, inputs, labels)
    a = evaluate(model, params, inputs, labels, 20, np.random.default_rng(1))
    b = evaluate(model, params, inputs, labels, 20, np.random.default_rng(1))
    many = evaluate(model, params, inputs, labels, 10**6, np.random.default_rng(1))
    assert a == b and a != exact
    assert many[0] == pytest.approx(exact[0], abs=5e-3)


# ------------------------------------------------------------- qubit budget
def test_devices_without_enough_qubits_are_never_aggregated():
    cfg = LearningConfig(**TINY)
    budget = QuantumNoiseConfig(qubit_budget=(3, 2))  # devices 1 and 3 have 2 qubits
    with_budget = FederatedLearner(cfg, 4, quantum_noise=budget)
    plain = FederatedLearner(cfg, 4)
    np.testing.assert_array_equal(with_budget.capable, [True, False, True, False])
    with_budget.reset(np.random.default_rng(5))
    plain.reset(np.random.default_rng(5))
    r1 = with_budget.run_round(np.ones(4, bool))
    r2 = plain.run_round(np.array([True, False, True, False]))
    np.testing.assert_array_equal(r1.delivered, [True, False, True, False])
    assert torch.equal(with_budget.global_params, plain.global_params)
    assert r1.global_loss == r2.global_loss


def test_budget_in_the_env_marks_incapable_devices_undelivered():
    env = gym.make(ENV_ID, packet_errors=False, update_bits=1.0, qubit_budget=(4, 2), rounds=2)
    u = env.unwrapped
    env.reset(seed=0)
    _, _, _, _, info = env.step(u.encode_action(np.arange(8) % 4, np.full(8, 3)))
    np.testing.assert_array_equal(info["delivered"], np.arange(8) % 2 == 0)
    assert info["num_delivered"] == 4


# --------------------------------------------------------- learner and env
def test_noisy_round_on_default_mixed_equals_the_density_fast_path():
    results = []
    noise = NOISE.replace(shots=50)  # same probabilities and generator: same shot counts
    for backend in ("torch", "default.mixed"):
        fl = FederatedLearner(LearningConfig(**TINY, backend=backend), 3, quantum_noise=noise)
        fl.reset(np.random.default_rng(4))
        r = fl.run_round(np.array([True, False, True]))
        results.append((fl.global_params.clone(), r.local_loss, r.global_loss))
    assert type(fl.model) is PennyLaneVQC
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-9)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-9)
    assert results[0][2] == pytest.approx(results[1][2], abs=1e-9)


def test_passes_split_over_devices_give_the_same_training():
    spec = VQCSpec(3, 2, 3, "expval", 5.0)
    rng = np.random.default_rng(0)
    counts = np.array([5, 9, 3, 7])
    angles = rng.uniform(0, np.pi, (counts.sum(), 3))
    labels = torch.as_tensor(rng.integers(0, 3, counts.sum()))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    init = torch.as_tensor(spec.init_params(rng))
    out = []
    for max_pass in (2**21, 2 * 4 * 64):  # everything at once vs. two devices per pass
        model = DensityMatrixVQC(spec, NOISE, torch.float64, max_pass_elements=max_pass)
        trainer = LocalTrainer(model, model.encode(angles), labels, counts, offsets, batch_size=4)
        out.append(trainer.train(init, np.random.default_rng(1)))
    assert DensityMatrixVQC(spec, NOISE, max_pass_elements=2 * 4 * 64).devices_per_pass(4) == 2
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-12)


def _episode(env, seed, rounds):
    u = env.unwrapped
    obs, info = env.reset(seed=seed)
    trace = [(obs, info["problem"].gains.copy(), info["global_loss"])]
    for t in range(rounds):
        action = u.encode_action((np.arange(8) + t) % 4, np.full(8, 3))
        obs, reward, _, _, info = env.step(action)
        trace.append((obs, info["problem"].gains.copy(), info["global_loss"], reward))
    return trace


def test_noisy_nisq_preset_is_deterministic_and_leaves_the_channel_alone():
    noisy = gym.make(ENV_ID, scenario="noisy-nisq")
    u = noisy.unwrapped
    assert type(u.learner.model) is DensityMatrixVQC
    np.testing.assert_array_equal(u.learner.capable, [True, True, True, False] * 2)
    a, b = _episode(noisy, 3, 3), _episode(gym.make(ENV_ID, scenario="noisy-nisq"), 3, 3)
    clean = _episode(gym.make(ENV_ID, scenario="small"), 3, 3)
    for x, y, z in zip(a, b, clean, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[2:] == y[2:]
        np.testing.assert_array_equal(x[1], z[1])  # identical channel realizations
    assert a[-1][2] != clean[-1][2]  # but the learning differs
    for twin in (pickle.loads(pickle.dumps(u)), copy.deepcopy(u)):
        _, info = twin.reset(seed=3)
        assert info["global_loss"] == a[0][2]


def test_default_scenario_is_ideal():
    sc = QFL_PRESETS["small"]
    assert sc.quantum_noise.is_ideal and sc.to_dict()["quantum_noise"]["shots"] is None
    assert type(FederatedLearner(sc.learning, 8).model) is StatevectorVQC
    sc2 = qfl_scenario("small", depolarizing_p=0.02, shots=100)
    assert (sc2.quantum_noise.depolarizing_p, sc2.quantum_noise.shots) == (0.02, 100)
    assert sc2.replace(shots=None).quantum_noise.shots is None


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"depolarizing_p": 1.5}, r"depolarizing_p must be <= 1\.0, got 1\.5"),
        ({"depolarizing_p": -0.1}, r"depolarizing_p must be >= 0\.0"),
        ({"amplitude_damping_gamma": 2.0}, r"amplitude_damping_gamma must be <= 1\.0"),
        ({"shots": -5}, r"shots must be >= 1, got -5"),
        ({"shots": 0}, r"shots must be >= 1, got 0"),
        ({"qubit_budget": 0}, r"qubit_budget\[0\] must be >= 1, got 0"),
        ({"qubit_budget": (4, -2)}, r"qubit_budget\[1\] must be >= 1, got -2"),
        (
            {"qubit_budget": (3, 2)},
            r"qubit_budget \(3, 2\) is too small for every device.*n_qubits=4",
        ),
        ({"qubit_budget": (4,) * 9}, r"qubit_budget lists 9 devices.*num_devices=8"),
        (
            {"depolarizing_p": 0.01, "backend": "default.qubit"},
            r"backend 'default.qubit' simulates pure states only",
        ),
    ],
)
def test_bad_noise_settings_name_the_field_and_the_limit(overrides, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **overrides)


def test_bad_noise_objects_are_rejected():
    with pytest.raises(ValueError, match="quantum_noise must be a QuantumNoiseConfig"):
        qfl_scenario("small", quantum_noise={"shots": 3})
    with pytest.raises(TypeError, match="unexpected keyword argument 'shot'"):
        QuantumNoiseConfig().replace(shot=3)
    with pytest.raises(ValueError, match=r"default\.mixed"):
        PennyLaneVQC(VQCSpec(2, 1, 2), "default.qubit", NOISE)
    with pytest.raises(ValueError, match="rng"):
        model = StatevectorVQC(VQCSpec(2, 1, 2), torch.float64)
        evaluate(
            model,
            torch.zeros(6),
            model.encode(np.zeros((2, 2))),
            torch.zeros(2, dtype=torch.long),
            10,
        )
