"""The fast batched simulator equals the PennyLane reference qnode (outputs and gradients)."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from qfl_gym.learning.circuit import PennyLaneVQC, make_qnode
from qfl_gym.learning.model import VQCSpec, cross_entropy
from qfl_gym.learning.statevector import StatevectorVQC, entangler_permutation

TOL = 1e-6


def _random_case(spec: VQCSpec, K: int, B: int, seed: int):
    rng = np.random.default_rng(seed)
    params = np.stack([spec.init_params(rng) for _ in range(K)])
    if spec.readout == "linear":  # non-trivial head bias
        params[:, -spec.num_classes :] = rng.normal(size=(K, spec.num_classes))
    angles = rng.uniform(0.0, np.pi, (K * B, spec.n_qubits))
    labels = rng.integers(0, spec.num_classes, (K, B))
    return params, angles, torch.as_tensor(labels)


def _outputs_and_grads(model, params, angles, labels, K, B):
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    inputs = model.encode(angles)
    inputs = inputs.reshape(K, B, *inputs.shape[1:])
    expvals = model.expvals(p, inputs)
    logits = model.spec.logits(p, expvals)
    (grad,) = torch.autograd.grad(cross_entropy(logits, labels).sum(), p)
    return expvals.detach(), logits.detach(), grad


@pytest.mark.parametrize(
    "n_qubits,n_layers,num_classes,readout,max_block",
    [
        (2, 1, 2, "expval", 4),
        (4, 2, 4, "expval", 4),  # the small preset's circuit: one matrix per device
        (3, 4, 3, "expval", 4),  # entangler ranges cycle 1, 2, 1, 2
        (4, 3, 10, "linear", 4),
        (5, 2, 3, "linear", 4),  # two blocks (2 + 3 qubits), einsum path
        (6, 2, 5, "expval", 2),  # three blocks
    ],
)
def test_fast_path_equals_pennylane_default_qubit(
    n_qubits, n_layers, num_classes, readout, max_block
):
    spec = VQCSpec(n_qubits, n_layers, num_classes, readout, logit_scale=3.0)
    K, B = 3, 4
    params, angles, labels = _random_case(spec, K, B, seed=n_qubits * 10 + n_layers)
    fast = StatevectorVQC(spec, torch.float64, max_block_qubits=max_block)
    ref = PennyLaneVQC(spec, "default.qubit")
    e1, l1, g1 = _outputs_and_grads(fast, params, angles, labels, K, B)
    e2, l2, g2 = _outputs_and_grads(ref, params, angles, labels, K, B)
    assert e1.shape == (K, B, spec.num_measured)
    np.testing.assert_allclose(e1, e2, atol=TOL, rtol=0)
    np.testing.assert_allclose(l1, l2, atol=TOL, rtol=0)
    np.testing.assert_allclose(g1, g2, atol=TOL, rtol=0)
    assert g1.abs().max() > 1e-3  # a real gradient was compared


def test_fast_path_equals_pennylane_lightning_adjoint():
    spec = VQCSpec(3, 2, 3, "expval", logit_scale=2.0)
    K, B = 2, 3
    params, angles, labels = _random_case(spec, K, B, seed=5)
    e1, _, g1 = _outputs_and_grads(StatevectorVQC(spec), params, angles, labels, K, B)
    e2, _, g2 = _outputs_and_grads(
        PennyLaneVQC(spec, "lightning.qubit"), params, angles, labels, K, B
    )
    np.testing.assert_allclose(e1, e2, atol=TOL, rtol=0)
    np.testing.assert_allclose(g1, g2, atol=TOL, rtol=0)


def test_single_precision_is_close_to_double():
    spec = VQCSpec(4, 2, 4, "expval", logit_scale=5.0)
    params, angles, _ = _random_case(spec, 2, 8, seed=1)
    out = []
    for dtype in (torch.float32, torch.float64):
        model = StatevectorVQC(spec, dtype)
        states = model.encode(angles).reshape(2, 8, -1)
        out.append(model.logits(torch.as_tensor(params, dtype=dtype), states).double())
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)


def test_circuit_unitary_matches_pennylane_matrix_and_is_unitary():
    spec = VQCSpec(3, 2, 3)
    rng = np.random.default_rng(2)
    params = torch.as_tensor(spec.init_params(rng))[None]
    U = StatevectorVQC(spec).circuit_unitary(params)[0]
    weights = spec.rotation_weights(params)[0].numpy()
    ref = qml.matrix(qml.StronglyEntanglingLayers(weights, wires=range(3)))
    np.testing.assert_allclose(U.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose((U @ U.conj().T).numpy(), np.eye(8), atol=1e-12)
    # the multi-block path builds the same layer matrices
    U2 = StatevectorVQC(spec, max_block_qubits=1).circuit_unitary(params)[0]
    np.testing.assert_allclose(U2.numpy(), ref, atol=1e-12)


def test_entangler_permutation_is_the_cnot_ring():
    for n, r in [(2, 1), (3, 1), (3, 2), (4, 3)]:
        f = entangler_permutation(n, r)
        ops = [qml.CNOT(wires=[q, (q + r) % n]) for q in range(n)]
        P = qml.matrix(qml.prod(*reversed(ops)), wire_order=range(n))
        expected = np.zeros((2**n, 2**n))
        expected[f, np.arange(2**n)] = 1.0
        np.testing.assert_array_equal(np.real(P), expected)


def test_embedding_is_the_rx_product_state():
    spec = VQCSpec(3, 1, 2)
    angles = np.array([[0.3, 1.2, 2.9]])
    psi = StatevectorVQC(spec).encode(angles)[0].numpy()
    dev = qml.device("default.qubit", wires=3)

    @qml.qnode(dev)
    def state():
        qml.AngleEmbedding(angles[0], wires=range(3), rotation="X")
        return qml.state()

    np.testing.assert_allclose(psi, state(), atol=1e-12)


def test_reference_qnode_accepts_single_and_broadcast_inputs():
    circuit = make_qnode(2, 1, 2)
    w = torch.zeros((1, 2, 3), dtype=torch.float64)
    single = circuit(torch.tensor([0.0, np.pi], dtype=torch.float64), w)
    batch = circuit(torch.tensor([[0.0, np.pi], [np.pi, 0.0]], dtype=torch.float64), w)
    # zero rotations: RX embedding then the CNOT ring (0->1, then 1->0)
    assert [float(v) for v in single] == pytest.approx([-1.0, -1.0])
    assert batch[0].shape == (2,)
    with pytest.raises(ValueError, match="device"):
        make_qnode(2, 1, 2, device="qiskit.aer")
