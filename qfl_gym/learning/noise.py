r"""Quantum noise and hardware limits of the devices' VQCs: the model and its numpy parts.

:class:`QuantumNoiseConfig` (frozen, validated like every config of the package) says
how the quantum hardware of the edge devices departs from an ideal simulator:

**Gate noise.** After every *gate layer* each qubit undergoes amplitude damping
``AD(gamma)`` followed by depolarizing ``DP(p)`` (PennyLane's
``qml.AmplitudeDamping`` and ``qml.DepolarizingChannel``):

.. math::

    \mathrm{AD}_\gamma(\rho) = K_0 \rho K_0^\dagger + K_1 \rho K_1^\dagger,\quad
    K_0 = \begin{pmatrix} 1 & 0 \\ 0 & \sqrt{1-\gamma} \end{pmatrix},\;
    K_1 = \begin{pmatrix} 0 & \sqrt{\gamma} \\ 0 & 0 \end{pmatrix};
    \qquad
    \mathrm{DP}_p(\rho) = (1-p)\rho + \tfrac{p}{3}(X\rho X + Y\rho Y + Z\rho Z)

(Nielsen and Chuang, eqs. 8.103 and 8.108). The VQC's gate layers are the angle
embedding (the ``RX`` on every qubit) and each ``StronglyEntanglingLayers`` layer (its
``Rot`` gates and its ring of CNOTs): ``n_layers + 1`` noise layers. A per-layer model
is a coarse-grained description of hardware whose error per gate layer is
calibrated: ``gamma = 1 - exp(-t_layer / T1)`` for a layer lasting ``t_layer`` on
qubits with relaxation time ``T1``; ``p`` on the order of the two-qubit gate error.

Both channels act on a qubit's density-matrix entries as a 2 x 2 mixing of the
populations ``(rho_00, rho_11)`` and a scaling of the coherences ``rho_01, rho_10``
(:func:`layer_channel`); the simulators apply exactly that, qubit by qubit.

**Finite shots.** With ``shots`` set, evaluating the global model on the test set
estimates every ``<Z_q>`` from ``shots`` measurements of each test sample: the counts
of the measured qubits' outcomes are multinomial draws from the circuit's exact
probabilities (:func:`sample_expvals`) with the learner's seeded generator, so the
test loss and accuracy (and the ``loss``/``accuracy`` rewards) carry shot noise.
With ``train_shots`` set, local training uses finite-shot gradients instead of exact
(analytic) ones: parameter-shift estimates with ``train_shots`` measurements per
expectation of every circuit (:mod:`qfl_gym.learning.shots`), drawn from a generator
spawned from the learner's reset generator; without it, training keeps the exact
gradients a simulator or an adjoint-capable device would give.

**Qubit budget.** ``qubit_budget`` lists the qubits of each device's processor
(repeated cyclically over the K devices: device ``k`` has ``qubit_budget[k % len]``).
A device with fewer qubits than the model's ``n_qubits`` cannot run the VQC: it never
contributes an update (the env reports it as not delivered and the server never
aggregates it); its radio slot is still assigned by the action.

This module imports neither torch nor PennyLane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qfl_gym.config_fields import ConfigFields, param
from qfl_gym.validation import check_int, check_probability

#: PennyLane backends that can simulate noise channels (mixed states)
MIXED_STATE_BACKENDS = ("default.mixed",)
MAX_SHOTS = 10**9


@dataclass(frozen=True)
class QuantumNoiseConfig(ConfigFields):
    """Noise channels, measurement shots and qubit budgets of the devices' VQCs.

    The defaults (all off) are the ideal, noiseless simulation.
    """

    depolarizing_p: float = param(
        0.0,
        "-",
        "depolarizing probability p per qubit after every gate layer "
        "(qml.DepolarizingChannel), in [0, 1]",
        "Nielsen and Chuang eq. 8.103; p ~ two-qubit gate error, 0.5-1% on "
        "superconducting processors (Arute et al., Nature 574, 505 (2019))",
    )
    amplitude_damping_gamma: float = param(
        0.0,
        "-",
        "amplitude-damping gamma per qubit after every gate layer "
        "(qml.AmplitudeDamping), in [0, 1]; gamma = 1 - exp(-t_layer / T1)",
        "Nielsen and Chuang eq. 8.108; T1 ~ 100 us and ~0.5 us per layer give 0.005",
    )
    shots: int | None = param(
        None,
        "shots",
        "measurements per test sample when the global model is evaluated (None: exact "
        "expectation values)",
        "reference study: 1, 40, 100 shots",
    )
    train_shots: int | None = param(
        None,
        "shots",
        "measurements per expectation of every circuit in local training: finite-shot "
        "parameter-shift gradients, 2 P_rot + 1 circuits per sample (None: exact gradients)",
        "reference study: accuracy versus H = 1, 40, 100 shots",
    )
    qubit_budget: tuple[int, ...] | None = param(
        None,
        "qubits",
        "qubits of each device's processor, repeated cyclically over the devices "
        "(None: unlimited); devices with fewer than n_qubits cannot train",
    )

    def __post_init__(self) -> None:
        check_probability("depolarizing_p", self.depolarizing_p)
        check_probability("amplitude_damping_gamma", self.amplitude_damping_gamma)
        if self.shots is not None:
            check_int("shots", self.shots, low=1, high=MAX_SHOTS)
        if self.train_shots is not None:
            check_int("train_shots", self.train_shots, low=1, high=MAX_SHOTS)
        if self.qubit_budget is not None:
            budget = self.qubit_budget
            if isinstance(budget, str | bytes) or not (
                isinstance(budget, int | np.integer) or hasattr(budget, "__iter__")
            ):
                raise ValueError(
                    f"qubit_budget must be an integer, a sequence of integers or None, "
                    f"got {budget!r}"
                )
            if isinstance(budget, int | np.integer):
                budget = (budget,)
            values = tuple(check_int(f"qubit_budget[{i}]", b, low=1) for i, b in enumerate(budget))
            if not values:
                raise ValueError("qubit_budget must hold at least one value (or be None)")
            object.__setattr__(self, "qubit_budget", values)

    # ----------------------------------------------------------------- derived
    @property
    def channels_on(self) -> bool:
        """Whether any noise channel is applied (the circuit is then a mixed state)."""
        return self.depolarizing_p > 0.0 or self.amplitude_damping_gamma > 0.0

    @property
    def is_ideal(self) -> bool:
        """No channels, exact expectations and no qubit budget: the default."""
        return (
            not self.channels_on
            and self.shots is None
            and self.train_shots is None
            and self.qubit_budget is None
        )

    def device_qubits(self, num_devices: int) -> np.ndarray:
        """Qubits of each of ``num_devices`` devices, (K,) int (a huge number if unlimited).

        Raises
        ------
        ValueError
            If ``qubit_budget`` lists more values than there are devices.
        """
        K = check_int("num_devices", num_devices, low=1)
        if self.qubit_budget is None:
            return np.full(K, np.iinfo(np.int64).max, dtype=np.int64)
        if len(self.qubit_budget) > K:
            raise ValueError(
                f"qubit_budget lists {len(self.qubit_budget)} devices but there are only "
                f"num_devices={K}; give at most {K} values (they repeat cyclically)"
            )
        budget = np.asarray(self.qubit_budget, dtype=np.int64)
        return budget[np.arange(K) % budget.size]

    def capable_devices(self, n_qubits: int, num_devices: int) -> np.ndarray:
        """Which devices have at least ``n_qubits`` qubits, (K,) bool.

        Raises
        ------
        ValueError
            If no device has enough qubits (nobody could train), naming ``qubit_budget``
            and the limit ``n_qubits``.
        """
        qubits = self.device_qubits(num_devices)
        capable = qubits >= n_qubits
        if not capable.any():
            raise ValueError(
                f"qubit_budget {self.qubit_budget} is too small for every device: the VQC "
                f"needs n_qubits={n_qubits} qubits, so no device could train; give some "
                f"devices >= {n_qubits} qubits or use a smaller n_qubits"
            )
        return capable

    def check_learning(self, learning: Any, num_devices: int) -> None:
        """Validate against a :class:`~qfl_gym.learning.config.LearningConfig` and K.

        Noise channels need a simulator of mixed states: ``backend="torch"`` (the batched
        density-matrix path) or ``"default.mixed"``; the qubit budget must leave at least
        one device able to run the ``n_qubits``-qubit model.
        """
        if self.channels_on and learning.backend not in ("torch", *MIXED_STATE_BACKENDS):
            raise ValueError(
                f"backend {learning.backend!r} simulates pure states only; with noise "
                f"channels on (depolarizing_p={self.depolarizing_p}, "
                f"amplitude_damping_gamma={self.amplitude_damping_gamma}) use "
                "backend='torch' (batched density matrices) or 'default.mixed'"
            )
        self.capable_devices(learning.n_qubits, num_devices)


# --------------------------------------------------------------------- channel
def layer_channel(
    depolarizing_p: float, amplitude_damping_gamma: float
) -> tuple[np.ndarray, float]:
    r"""The single-qubit channel ``DP(p) o AD(gamma)`` as population map and coherence scale.

    On one qubit's density-matrix entries:

    .. math::

        \begin{pmatrix}\rho'_{00}\\ \rho'_{11}\end{pmatrix}
        = M \begin{pmatrix}\rho_{00}\\ \rho_{11}\end{pmatrix},\qquad
        \rho'_{01} = s\,\rho_{01},\; \rho'_{10} = s\,\rho_{10},

    with :math:`M = D A`, :math:`A = \begin{pmatrix}1 & \gamma\\ 0 & 1-\gamma\end{pmatrix}`
    (amplitude damping), :math:`D = \begin{pmatrix}1-2p/3 & 2p/3\\ 2p/3 & 1-2p/3
    \end{pmatrix}` (depolarizing) and :math:`s = \sqrt{1-\gamma}\,(1 - 4p/3)`.
    The Hilbert-Schmidt adjoint (Heisenberg picture) is the same form with ``M.T``.

    Returns
    -------
    M : ndarray, shape (2, 2)
        Population map.
    s : float
        Coherence scale.
    """
    p = check_probability("depolarizing_p", depolarizing_p)
    g = check_probability("amplitude_damping_gamma", amplitude_damping_gamma)
    damp = np.array([[1.0, g], [0.0, 1.0 - g]])
    depol = np.array([[1.0 - 2.0 * p / 3.0, 2.0 * p / 3.0], [2.0 * p / 3.0, 1.0 - 2.0 * p / 3.0]])
    return depol @ damp, float(np.sqrt(1.0 - g) * (1.0 - 4.0 * p / 3.0))


def channel_tables(n_qubits: int, M: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-qubit weight tables applying the channel to an ``n``-qubit density matrix.

    For qubit ``q`` (wire 0 = most significant bit), the channel maps
    ``rho -> W0[q] * rho + W1[q] * flip_q(rho)`` element-wise, where ``flip_q`` flips
    bit ``q`` of both the row and the column index. Returns ``W0, W1`` of shape
    ``(n, D, D)``, ``D = 2**n``.
    """
    D = 2**n_qubits
    idx = np.arange(D)
    shift = n_qubits - 1 - np.arange(n_qubits)
    row = (idx[None, :, None] >> shift[:, None, None]) & 1  # (n, D, 1)
    col = (idx[None, None, :] >> shift[:, None, None]) & 1  # (n, 1, D)
    same = row == col
    W0 = np.where(same, M[row, row], s)
    W1 = np.where(same, M[row, 1 - row], 0.0)
    return W0.astype(float), W1.astype(float)


def coherence_table(n_qubits: int, s: float) -> np.ndarray:
    """``s ** popcount(i XOR j)`` (D, D): the coherence scaling of the channel on all qubits."""
    idx = np.arange(2**n_qubits)
    x = idx[:, None] ^ idx[None, :]
    count = np.zeros_like(x)
    for _ in range(n_qubits):
        count += x & 1
        x >>= 1
    return np.power(float(s), count)


def apply_channel_numpy(
    rho: np.ndarray,
    n_qubits: int,
    M: np.ndarray,
    coherence: np.ndarray,
    adjoint: bool = False,
) -> np.ndarray:
    """The channel of :func:`layer_channel` (or its adjoint) on every qubit of ``rho`` (D, D).

    The channels of different qubits commute, so the coherences of all qubits are
    scaled at once (``coherence``, :func:`coherence_table`), then each qubit's
    populations are mixed: ``M = I + u v^T`` with ``u = (-1, 1)``, ``v = (a, -b)``
    (``a = M[1, 0]``, ``b = M[0, 1]``; columns of ``M`` sum to 1), i.e. ``d = a rho_00 -
    b rho_11`` moves from ``rho_00`` to ``rho_11``; the adjoint uses ``M^T = I + v u^T``.
    Works in place on a C-contiguous complex128 ``rho``; always use the returned array.
    """
    rho = np.ascontiguousarray(rho, dtype=complex)
    rho *= coherence
    a, b = float(M[1, 0]), float(M[0, 1])
    if a == 0.0 and b == 0.0:
        return rho
    f = rho.view(np.float64)  # real and imaginary parts transform alike
    for q in range(n_qubits):
        A, C = 2**q, 2 ** (n_qubits - q - 1)
        v = f.reshape(A, 2, C, A, 2, 2 * C)
        r00 = v[:, 0, :, :, 0, :]
        r11 = v[:, 1, :, :, 1, :]
        if adjoint:
            d = r11 - r00
            r00 += a * d
            r11 -= b * d
        else:
            d = a * r00
            d -= b * r11
            r00 -= d
            r11 += d
    return rho


# ----------------------------------------------------------------------- shots
def marginal_probabilities(probs: np.ndarray, n_qubits: int, num_measured: int) -> np.ndarray:
    """Probabilities of the first ``num_measured`` wires, (..., 2**m), from (..., 2**n)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs.reshape(*probs.shape[:-1], 2**num_measured, -1).sum(-1)


def sample_expvals(marginal: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Shot estimates of ``<Z_q>`` of ``m`` measured qubits from their joint distribution.

    Parameters
    ----------
    marginal : ndarray, shape (..., 2**m)
        Exact outcome probabilities of the measured qubits (wire 0 = most significant
        bit); tiny negative round-off is set to 0 and every row renormalized.
    shots : int
        Measurements per row (>= 1).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (..., m)
        ``(n_plus - n_minus) / shots`` per qubit: unbiased, variance ``(1 - <Z>^2) / shots``.
    """
    shots = check_int("shots", shots, low=1, high=MAX_SHOTS)
    p = np.clip(np.asarray(marginal, dtype=np.float64), 0.0, None)
    p /= p.sum(-1, keepdims=True)
    m = p.shape[-1].bit_length() - 1
    counts = rng.multinomial(shots, p)
    idx = np.arange(2**m)[:, None]
    signs = 1.0 - 2.0 * ((idx >> (m - 1 - np.arange(m))[None, :]) & 1)
    return counts @ signs / shots
