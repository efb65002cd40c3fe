"""Configuration of the federated VQC learning task, with named presets.

:class:`LearningConfig` is a frozen dataclass validated at construction, built like
:class:`~qfl_gym.wireless.config.UplinkConfig`: every field carries its unit, meaning
and source in ``dataclasses.fields(...)[i].metadata``; a bad value raises
:class:`ValueError` naming the field, the value and what is allowed; ``replace(**kw)``
rejects unknown names listing the valid ones.

Validation needs no dataset download and imports neither torch nor PennyLane: the
bundled datasets' class counts are known statically (:data:`DATASETS`); the datasets
read from local files (:data:`~qfl_gym.learning.datasets.LOCAL_DATASETS`: MNIST,
Fashion-MNIST, CIFAR-10) are checked for their files in ``data_dir``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from qfl_gym.config_fields import ConfigFields, param
from qfl_gym.learning.aggregation import AGGREGATION_RULES
from qfl_gym.learning.datasets import LOCAL_DATASETS, check_data_dir
from qfl_gym.validation import check_choice, check_float, check_int


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a dataset bundled with scikit-learn (no download)."""

    loader: str  # name of the sklearn.datasets loader
    num_samples: int
    num_features: int
    class_counts: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)


#: The datasets bundled with scikit-learn that the learning task can use.
DATASETS: dict[str, DatasetInfo] = {
    # 8x8 handwritten digits (UCI), an MNIST-like task: 1797 samples, 64 pixels.
    "digits": DatasetInfo(
        "load_digits", 1797, 64, (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
    ),
    "iris": DatasetInfo("load_iris", 150, 4, (50, 50, 50)),
    "wine": DatasetInfo("load_wine", 178, 13, (59, 71, 48)),
    "breast_cancer": DatasetInfo("load_breast_cancer", 569, 30, (212, 357)),
}

PARTITIONS = ("iid", "dirichlet")
READOUTS = ("expval", "linear")
OPTIMIZERS = ("adam", "sgd")
BACKENDS = ("torch", "default.qubit", "lightning.qubit", "default.mixed")
PRECISIONS = ("double", "single")

MIN_QUBITS = 2
MAX_QUBITS = 10
MAX_LAYERS = 32


@dataclass(frozen=True)
class LearningConfig(ConfigFields):
    """The learning side of quantum federated learning: data, VQC model, local training.

    Every device holds a shard of a scikit-learn dataset (preprocessed to ``n_qubits``
    rotation angles) and trains a variational quantum circuit on it; the base station
    aggregates the delivered updates with ``aggregation``.
    """

    # ------------------------------------------------------------------ data
    dataset: str = param(
        "digits",
        "-",
        f"scikit-learn dataset ({', '.join(DATASETS)}) or one read from local files in "
        f"data_dir ({', '.join(LOCAL_DATASETS)}; their own train/test split)",
    )
    data_dir: str | None = param(
        None,
        "-",
        "folder holding the files of a local dataset (mnist / fashion-mnist: the four "
        "IDX files, optionally .gz; cifar10: data_batch_1..5 and test_batch); never "
        "downloaded. None for the bundled datasets",
    )
    classes: tuple[int, ...] | None = param(
        (0, 1, 2, 3), "-", "class subset (labels of the dataset) or None for all classes"
    )
    test_fraction: float = param(
        0.2,
        "-",
        "fraction of each class held out as the global test set (stratified)",
        "chosen: 80/20 split",
    )
    samples_per_device: int | None = param(
        None,
        "samples",
        "cap on training samples per device (None: the whole training split is shared out)",
    )
    partition: str = param(
        "dirichlet", "-", f"how training samples are split over devices: {', '.join(PARTITIONS)}"
    )
    dirichlet_alpha: float = param(
        0.5,
        "-",
        "concentration of the per-class Dirichlet split (partition='dirichlet'); "
        "small = highly non-IID",
        "Hsu et al. 2019; 0.5 = strong label skew, a common FL benchmark value",
    )
    data_seed: int | None = param(
        None,
        "-",
        "fixed seed of split, partition and initial weights (None: drawn from the env's "
        "reset seed every episode)",
    )
    # ----------------------------------------------------------------- model
    n_qubits: int = param(
        4,
        "qubits",
        f"circuit width = PCA features ({MIN_QUBITS}..{MAX_QUBITS})",
        "chosen: NISQ-scale VQC, fast enough for RL",
    )
    n_layers: int = param(2, "-", "StronglyEntanglingLayers layers", "Schuld et al. 2020")
    readout: str = param(
        "expval",
        "-",
        "'expval': class c scored by logit_scale * <Z_c> (classes <= n_qubits); "
        "'linear': affine head on all <Z_q> (any number of classes)",
    )
    logit_scale: float = param(
        5.0,
        "-",
        "class score per unit <Z> (readout='expval'); softmax temperature 1/scale",
        "chosen: with |<Z>| <= 1 the softmax can still reach p > 0.99",
    )
    # -------------------------------------------------------------- training
    local_epochs: int = param(1, "epochs", "local epochs E per round", "McMahan et al. 2017")
    batch_size: int = param(16, "samples", "local minibatch size B", "chosen (common FL value)")
    optimizer: str = param(
        "adam", "-", f"local optimizer: {', '.join(OPTIMIZERS)} (state reset every round)"
    )
    learning_rate: float = param(
        0.05, "-", "local learning rate", "chosen: small converges in about 10-20 rounds"
    )
    aggregation: str = param(
        "fedavg", "-", "aggregation rule at the base station", "McMahan et al. 2017"
    )
    backend: str = param(
        "torch",
        "-",
        "'torch': batched state-vector simulation of all devices at once; "
        "'default.qubit' / 'lightning.qubit': the PennyLane device path, one qnode call "
        "per device and minibatch (reference, slow); 'default.mixed': PennyLane's "
        "mixed-state device (the reference with quantum_noise channels); with noise "
        "channels 'torch' simulates batched density matrices",
    )
    torch_threads: int | None = param(
        1,
        "threads",
        "torch intra-op threads during training and evaluation (restored afterwards); "
        "None keeps torch's global setting",
        "measured: 1 is as fast as 2 for small and immune to CPU oversubscription",
    )
    precision: str = param(
        "single",
        "-",
        "'single' (complex64 states) or 'double' (complex128) for backend='torch'; "
        "PennyLane backends always run in double",
        "measured: single ~15% faster (benchmarks/bench_qfl.py)",
    )

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, (*DATASETS, *LOCAL_DATASETS))
        self._check_data_dir()
        info = self.dataset_info
        if self.classes is not None:
            if isinstance(self.classes, str | bytes) or not hasattr(self.classes, "__iter__"):
                raise ValueError(
                    f"classes must be a sequence of class labels or None, got {self.classes!r}"
                )
            labels = tuple(
                check_int(f"classes[{i}]", c, low=0, high=info.num_classes - 1)
                for i, c in enumerate(self.classes)
            )
            if len(set(labels)) != len(labels):
                raise ValueError(f"classes must not repeat a label, got {labels}")
            if len(labels) < 2:
                raise ValueError(f"classes must hold at least 2 labels, got {labels}")
            object.__setattr__(self, "classes", tuple(sorted(labels)))
        check_float("test_fraction", self.test_fraction, low=0.0, high=0.9, low_inclusive=False)
        if self.samples_per_device is not None:
            check_int("samples_per_device", self.samples_per_device, low=1)
        check_choice("partition", self.partition, PARTITIONS)
        check_float("dirichlet_alpha", self.dirichlet_alpha, low=0.0, low_inclusive=False)
        if self.data_seed is not None:
            check_int("data_seed", self.data_seed, low=0)
        check_int("n_qubits", self.n_qubits, low=MIN_QUBITS, high=MAX_QUBITS)
        check_int("n_layers", self.n_layers, low=1, high=MAX_LAYERS)
        check_choice("readout", self.readout, READOUTS)
        if self.readout == "expval" and self.num_classes > self.n_qubits:
            raise ValueError(
                f"classes: readout='expval' scores each class with one qubit's <Z>, so the "
                f"number of classes ({self.num_classes} for dataset={self.dataset!r}, "
                f"classes={self.classes}) must be <= n_qubits={self.n_qubits}; choose a "
                "class subset, more qubits, or readout='linear'"
            )
        check_float("logit_scale", self.logit_scale, low=0.0, high=100.0, low_inclusive=False)
        check_int("local_epochs", self.local_epochs, low=1, high=1000)
        check_int("batch_size", self.batch_size, low=1, high=1 << 16)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("learning_rate", self.learning_rate, low=0.0, high=100.0, low_inclusive=False)
        check_choice("aggregation", self.aggregation, AGGREGATION_RULES)
        check_choice("backend", self.backend, BACKENDS)
        check_choice("precision", self.precision, PRECISIONS)
        if self.torch_threads is not None:
            check_int("torch_threads", self.torch_threads, low=1, high=1024)

    def _check_data_dir(self) -> None:
        if not self.is_local_dataset:
            if self.data_dir is not None:
                raise ValueError(
                    f"data_dir is only for the local datasets ({', '.join(LOCAL_DATASETS)}); "
                    f"dataset {self.dataset!r} ships with scikit-learn: leave data_dir None"
                )
            return
        if self.data_dir is None:
            raise ValueError(
                f"data_dir: dataset {self.dataset!r} is read from local files (never "
                f"downloaded); set data_dir to the folder holding "
                f"{', '.join(LOCAL_DATASETS[self.dataset].files)}"
            )
        if not isinstance(self.data_dir, str | os.PathLike):
            raise ValueError(f"data_dir must be a folder path, got {self.data_dir!r}")
        object.__setattr__(self, "data_dir", os.fspath(self.data_dir))
        try:
            check_data_dir(self.dataset, self.data_dir)
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None

    # ----------------------------------------------------------------- derived
    @property
    def is_local_dataset(self) -> bool:
        """Whether :attr:`dataset` is read from files in :attr:`data_dir`."""
        return self.dataset in LOCAL_DATASETS

    @property
    def dataset_info(self) -> Any:
        """Static facts of :attr:`dataset` (:class:`DatasetInfo` or ``LocalDatasetInfo``)."""
        if self.is_local_dataset:
            return LOCAL_DATASETS[self.dataset]
        return DATASETS[self.dataset]

    @property
    def class_labels(self) -> tuple[int, ...]:
        """The dataset labels in use, ascending (model class ``i`` is label ``[i]``)."""
        if self.classes is None:
            return tuple(range(self.dataset_info.num_classes))
        return self.classes

    @property
    def num_classes(self) -> int:
        """C, the number of classes the model scores."""
        return len(self.class_labels)

    @property
    def num_parameters(self) -> int:
        """P, trainable parameters per model: rotations ``3 L n`` (+ head ``C (n + 1)``)."""
        p = 3 * self.n_layers * self.n_qubits
        if self.readout == "linear":
            p += self.num_classes * (self.n_qubits + 1)
        return p
