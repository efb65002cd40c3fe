"""Qubit encodings of a block's option tuples.

Each of the ``m`` block devices picks one of ``M`` options (:mod:`agents.qaoa.block`).
Qubit ``q`` of device ``i`` is ``q = i * bits_per_device + j``; wire 0 is the most
significant bit of the computational-basis index (PennyLane's convention).

- ``"binary"``: ``log2(M)`` qubits per device hold the option index in binary (most
  significant bit first). Needs ``M`` to be a power of two (true for the joint option
  ``a = n * L + l`` when ``N`` and ``L`` are powers of two, where the first
  ``log2 N`` bits are the sub-channel and the last ``log2 L`` the power level). Every
  bitstring is feasible and the basis index equals the option-tuple index.
- ``"one-hot"``: ``M`` qubits per device, option ``a`` selected by qubit ``a``. Valid
  bitstrings have exactly one qubit set per device; the violation of a bitstring is
  ``V = sum_i (1 - sum_a x_ia)^2`` (an integer, ``>= 1`` when infeasible), which the
  costs of :mod:`agents.qaoa.qubo` penalize. Infeasible samples are *repaired*: each
  device takes, among its set qubits (or among all options if none is set), the option
  with the highest preference score (the option's stand-alone reward).
"""

from __future__ import annotations

import numpy as np

from qfl_gym.validation import check_choice, check_int

ENCODINGS = ("binary", "one-hot")


def is_power_of_two(value: int) -> bool:
    """``value`` is 1, 2, 4, 8, ..."""
    return value >= 1 and value & (value - 1) == 0


def default_encoding(num_options: int) -> str:
    """``"binary"`` when ``num_options`` is a power of two, else ``"one-hot"``."""
    return "binary" if is_power_of_two(num_options) else "one-hot"


class Encoding:
    """Map between basis states of ``m * bits_per_device`` qubits and option tuples.

    Parameters
    ----------
    scheme : {"binary", "one-hot"}
        See the module docstring.
    num_devices : int
        m, devices of the block.
    num_options : int
        M, options per device.
    """

    def __init__(self, scheme: str, num_devices: int, num_options: int) -> None:
        check_choice("encoding", scheme, ENCODINGS)
        self.num_devices = check_int("num_devices", num_devices, low=0)
        self.num_options = check_int("num_options", num_options, low=1)
        if scheme == "binary" and not is_power_of_two(num_options):
            raise ValueError(
                f"encoding='binary' needs a power-of-two number of options per device, got "
                f"{num_options}; use encoding='one-hot' (or N and L powers of two)"
            )
        self.scheme = scheme
        self.bits_per_device = (
            int(num_options).bit_length() - 1 if scheme == "binary" else int(num_options)
        )
        self.num_qubits = self.num_devices * self.bits_per_device

    @property
    def is_one_hot(self) -> bool:
        return self.scheme == "one-hot"

    def bits(self, basis: np.ndarray) -> np.ndarray:
        """Qubit values ``(S, n)`` (uint8) of basis indices ``(S,)``."""
        basis = np.asarray(basis, dtype=np.int64)
        shifts = np.arange(self.num_qubits - 1, -1, -1, dtype=np.int64)
        return ((basis[:, None] >> shifts) & 1).astype(np.uint8)

    def basis_index(self, bits: np.ndarray) -> np.ndarray:
        """Basis indices ``(S,)`` of qubit values ``(S, n)``."""
        bits = np.asarray(bits, dtype=np.int64)
        weights = np.int64(1) << np.arange(self.num_qubits - 1, -1, -1, dtype=np.int64)
        return bits @ weights

    def encode(self, options: np.ndarray) -> np.ndarray:
        """Basis indices ``(S,)`` of option tuples ``(S, m)`` (always feasible strings)."""
        options = np.asarray(options, dtype=np.int64)
        m, M, b = self.num_devices, self.num_options, self.bits_per_device
        if self.scheme == "binary":
            weights = np.int64(M) ** np.arange(m - 1, -1, -1, dtype=np.int64)
            return options @ weights
        bits = np.zeros((options.shape[0], m * b), dtype=np.int64)
        bits[np.arange(options.shape[0])[:, None], np.arange(m) * b + options] = 1
        return self.basis_index(bits)

    def decode(
        self, basis: np.ndarray, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Option tuples ``(S, m)`` and violations ``(S,)`` of basis indices ``(S,)``.

        Parameters
        ----------
        basis : ndarray of int, shape (S,)
        scores : ndarray, shape (m, M), optional
            Preference of each option, used to repair one-hot violations (module
            docstring); ties and ``None`` prefer the lower option index.
        """
        basis = np.asarray(basis, dtype=np.int64)
        m, M, b = self.num_devices, self.num_options, self.bits_per_device
        if self.scheme == "binary":
            shifts = b * np.arange(m - 1, -1, -1, dtype=np.int64)
            return (basis[:, None] >> shifts) & (M - 1), np.zeros(basis.shape[0], np.int64)
        return self.decode_bits(self.bits(basis), scores)

    def decode_bits(
        self, bits: np.ndarray, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` of qubit values ``(S, n)`` (any number of qubits)."""
        bits = np.asarray(bits)
        m, M, b = self.num_devices, self.num_options, self.bits_per_device
        if self.scheme == "binary":
            weights = np.int64(1) << np.arange(b - 1, -1, -1, dtype=np.int64)
            options = bits.reshape(-1, m, b).astype(np.int64) @ weights
            return options, np.zeros(bits.shape[0], np.int64)
        group = bits.reshape(-1, m, M).astype(bool)
        count = group.sum(axis=2)
        violations = ((1 - count) ** 2).sum(axis=1)
        pref = np.zeros((m, M)) if scores is None else np.asarray(scores, dtype=float)
        # lower option index wins ties: subtract a tiny rank-dependent amount
        rank = np.arange(M) * (1e-12 * (1.0 + np.abs(pref).max()))
        masked = np.where(group | (count == 0)[..., None], pref - rank, -np.inf)
        return masked.argmax(axis=2), violations

    def all_states(self, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` of every basis state ``0 .. 2^n - 1``."""
        return self.decode(np.arange(2**self.num_qubits, dtype=np.int64), scores)
