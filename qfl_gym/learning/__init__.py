"""Federated learning of variational quantum circuits on scikit-learn datasets.

Modules:

- :mod:`.config`: :class:`LearningConfig` (data, model, training; validated presets).
- :mod:`.data`: dataset loading and preprocessing to rotation angles.
- :mod:`.partition`: IID and Dirichlet splits over devices.
- :mod:`.model`: VQC parameter layout, readout and loss.
- :mod:`.circuit`: the PennyLane reference qnode (imports PennyLane).
- :mod:`.statevector`: the fast batched torch simulator of the same circuit.
- :mod:`.noise`: quantum noise channels, measurement shots and qubit budgets (numpy).
- :mod:`.density`: the batched torch density-matrix simulator of the noisy circuit.
- :mod:`.training`: batched local training of all devices.
- :mod:`.aggregation`: FedAvg, robust rules (median, trimmed mean, Krum) and the
  registry of aggregation rules.
- :mod:`.privacy`: DP-FedAvg clipping, Gaussian noise and ``dp_accounting`` accounting.
- :mod:`.attacks`: malicious devices (poisoned updates or labels), rule tolerances.
- :mod:`.federated`: :class:`FederatedLearner`, the round orchestration.

Importing this package loads only numpy code; torch is imported by the modules that
need it (:mod:`.model`, :mod:`.statevector`, :mod:`.training`, :mod:`.federated`) and
PennyLane only by :mod:`.circuit`.
"""

from __future__ import annotations

from typing import Any

from qfl_gym.learning.aggregation import AGGREGATION_RULES, aggregate, register_aggregation
from qfl_gym.learning.config import DATASETS, LearningConfig

__all__ = [
    "AGGREGATION_RULES",
    "DATASETS",
    "FederatedLearner",
    "LearningConfig",
    "aggregate",
    "register_aggregation",
]


def __getattr__(name: str) -> Any:
    if name == "FederatedLearner":  # imports torch
        from qfl_gym.learning.federated import FederatedLearner

        return FederatedLearner
    raise AttributeError(f"module 'qfl_gym.learning' has no attribute {name!r}")
