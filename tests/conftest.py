"""Shared fixtures and reference implementations for the test suite."""

from __future__ import annotations

from typing import Any

import numpy as np

#: LearningConfig fields of a tiny, fast learning task: iris (3 classes) on 3-qubit,
#: 1-layer VQCs, Dirichlet shards, double precision
TINY_LEARNING: dict[str, Any] = {
    "dataset": "iris",
    "classes": None,
    "n_qubits": 3,
    "n_layers": 1,
    "batch_size": 8,
    "partition": "dirichlet",
    "dirichlet_alpha": 1.0,
    "precision": "double",
}


def tiny_qfl(**changes: Any) -> dict[str, Any]:
    """QFL-v0 overrides of a tiny, fast variant of the small preset, with ``changes``.

    4 devices on 2 sub-channels with 2 power levels; iris on 3-qubit, 1-layer VQCs.
    """
    base = {
        "num_devices": 4,
        "num_subchannels": 2,
        "num_power_levels": 2,
        "dataset": "iris",
        "classes": None,
        "n_qubits": 3,
        "n_layers": 1,
    }
    return {**base, **changes}


def reference_sinr(
    gains: np.ndarray,
    power_w: np.ndarray,
    channels: np.ndarray,
    noise_w: np.ndarray,
    eps: float = 0.0,
) -> np.ndarray:
    """SINR by the textbook definition, one device at a time (slow, obviously right).

    On each sub-channel devices are decoded in descending order of received power
    (ties: lower index first); device k sees the devices decoded after it fully and
    those decoded before it scaled by ``eps``.
    """
    K = len(channels)
    s = np.array([power_w[k] * gains[k, channels[k]] for k in range(K)])
    sinr = np.zeros(K)
    for k in range(K):
        interference = 0.0
        for j in range(K):
            if j == k or channels[j] != channels[k]:
                continue
            decoded_after_k = s[j] < s[k] or (s[j] == s[k] and j > k)
            interference += s[j] if decoded_after_k else eps * s[j]
        sinr[k] = s[k] / (interference + noise_w[channels[k]])
    return sinr
