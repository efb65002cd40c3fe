r"""Datasets bundled with scikit-learn, preprocessed to rotation angles for a VQC.

Pipeline (:func:`prepare_data`), every statistic fitted on the training split only:

1. Load the dataset from scikit-learn's bundled files (never downloaded) and keep the
   configured class subset; model class ``i`` is the ``i``-th smallest kept label.
2. Stratified train/test split: class ``c`` with ``n_c`` samples puts
   ``max(1, round(test_fraction * n_c))`` of them in the test set (and at least one in
   training), chosen by the seeded generator.
3. Standardize each feature with the training mean and standard deviation (constant
   features, e.g. blank digit pixels, are only centred).
4. PCA to ``n_qubits`` components (SVD of the standardized training matrix; each
   component's sign is fixed so its largest loading is positive, as scikit-learn's
   ``svd_flip``). A dataset with fewer features than qubits (iris: 4) reuses components
   cyclically: qubit ``q`` gets component ``q mod F``.
5. Min-max scale each component to angles in :math:`[0, \pi]` with the training
   minimum and maximum: :math:`x = \pi (z - z_{min}) / (z_{max} - z_{min})`; test angles
   outside the training range are clipped to :math:`[0, \pi]` (scikit-learn's
   ``MinMaxScaler(clip=True)``).

The datasets read from local files (MNIST, Fashion-MNIST, CIFAR-10;
:mod:`qfl_gym.learning.datasets`) skip steps 1-2: their own train/test split is used
(``test_fraction`` does not apply, no draw from the generator) and their images are
first downsampled to at most 64 block-averaged grey pixels; steps 3-5 are the same,
fitted on the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qfl_gym.learning.config import DATASETS, LearningConfig
from qfl_gym.learning.datasets import load_local_dataset


@lru_cache(maxsize=len(DATASETS))
def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (S, F) float64 and labels (S,) int64 of a bundled dataset (read-only).

    Cached: the files are parsed once per process.
    """
    if name not in DATASETS:
        raise ValueError(
            f"unknown bundled dataset {name!r}; valid: {', '.join(map(repr, DATASETS))} "
            "(local files: qfl_gym.learning.datasets.load_local_dataset)"
        )
    from sklearn import datasets  # heavy import, only when data is needed

    bunch = getattr(datasets, DATASETS[name].loader)()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def split_counts(config: LearningConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and test samples per kept class, (C,) each.

    Bundled datasets: from their static class counts, without loading the data. Local
    datasets: counted in their (cached) files.
    """
    if config.is_local_dataset:
        local = load_local_dataset(config.dataset, config.data_dir)
        labels = np.asarray(config.class_labels)
        size = config.dataset_info.num_classes
        n_train = np.bincount(local.y_train, minlength=size)[labels]
        n_test = np.bincount(local.y_test, minlength=size)[labels]
        return n_train.astype(np.int64), n_test.astype(np.int64)
    counts = np.array([config.dataset_info.class_counts[c] for c in config.class_labels])
    n_test = np.maximum(1, np.rint(config.test_fraction * counts).astype(np.int64))
    n_test = np.minimum(n_test, counts - 1)
    return counts - n_test, n_test


def train_size(config: LearningConfig) -> int:
    """Number of training samples the split leaves (before any per-device cap)."""
    return int(split_counts(config)[0].sum())


def check_enough_samples(config: LearningConfig, num_devices: int) -> None:
    """``ValueError`` if the training split cannot give every device a sample."""
    n = train_size(config)
    if n < num_devices:
        raise ValueError(
            f"num_devices: dataset {config.dataset!r} (classes {config.class_labels}, "
            f"test_fraction={config.test_fraction}) has {n} training samples, too few for "
            f"num_devices={num_devices}: every device needs at least one"
        )


@dataclass(frozen=True)
class AnglePreprocessor:
    """Standardize, project on principal components, scale to [0, pi] (fitted on train).

    Attributes
    ----------
    mean, scale : ndarray, shape (F,)
        Training mean and standard deviation (1 where the feature is constant).
    components : ndarray, shape (F, n_qubits)
        Projection (principal axes, cyclically repeated if ``F < n_qubits``).
    low, high : ndarray, shape (n_qubits,)
        Training range of the projections.
    """

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, x_train: np.ndarray, n_qubits: int) -> AnglePreprocessor:
        """Fit on the training features (M, F)."""
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        scale = np.where(std > 1e-12, std, 1.0)
        z = (x_train - mean) / scale
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        num = min(n_qubits, vt.shape[0])
        axes = vt[:num]
        signs = np.sign(axes[np.arange(num), np.abs(axes).argmax(axis=1)])
        axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
        components = axes[np.arange(n_qubits) % num].T
        proj = z @ components
        return cls(mean, scale, components, proj.min(axis=0), proj.max(axis=0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Angles (M, n_qubits) in [0, pi] of features (M, F)."""
        proj = ((x - self.mean) / self.scale) @ self.components
        width = self.high - self.low
        safe = np.where(width > 1e-12, width, 1.0)
        angles = np.where(width > 1e-12, np.pi * (proj - self.low) / safe, 0.5 * np.pi)
        return np.clip(angles, 0.0, np.pi)


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Train and test sets as VQC input angles.

    Attributes
    ----------
    x_train, x_test : ndarray, shape (M, n_qubits)
        Rotation angles in [0, pi], rad.
    y_train, y_test : ndarray of int64, shape (M,)
        Model class indices ``0..C-1``.
    class_labels : tuple of int
        Dataset label of each model class.
    preprocessor : AnglePreprocessor
        The transform, fitted on the training rows only.
    train_index, test_index : ndarray of int64
        Rows of the full dataset (:func:`load_dataset`) in each split; for a local
        dataset, rows of its own training and test arrays.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_labels: tuple[int, ...]
    preprocessor: AnglePreprocessor
    train_index: np.ndarray
    test_index: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_labels)


def stratified_split(
    y: np.ndarray, n_test_per_class: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with ``n_test_per_class[c]`` test samples of class ``c``.

    ``y`` holds class indices ``0..C-1``; both outputs are sorted.
    """
    keys = rng.random(y.shape[0])
    order = np.lexsort((keys, y))  # by class, random within class
    counts = np.bincount(y, minlength=len(n_test_per_class))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(y.shape[0]) - np.repeat(starts, counts)
    is_test = np.zeros(y.shape[0], dtype=bool)
    is_test[order] = rank < np.repeat(n_test_per_class, counts)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def prepare_data(config: LearningConfig, rng: np.random.Generator) -> PreparedData:
    """Load, subset, split and preprocess the dataset of ``config`` (see module doc).

    The SVD runs with one BLAS thread: the matrices are small, and on a loaded machine
    multi-threaded OpenBLAS made a reset up to 50x slower.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _prepare_data(config, rng)


def _prepare_data(config: LearningConfig, rng: np.random.Generator) -> PreparedData:
    if config.is_local_dataset:
        return _prepare_local(config)
    x_all, y_all = load_dataset(config.dataset)
    labels = np.asarray(config.class_labels)
    rows = np.flatnonzero(np.isin(y_all, labels))
    x, y = x_all[rows], np.searchsorted(labels, y_all[rows])
    _, n_test = split_counts(config)
    train, test = stratified_split(y, n_test, rng)
    prep = AnglePreprocessor.fit(x[train], config.n_qubits)
    return PreparedData(
        x_train=prep.transform(x[train]),
        y_train=y[train],
        x_test=prep.transform(x[test]),
        y_test=y[test],
        class_labels=tuple(int(c) for c in labels),
        preprocessor=prep,
        train_index=rows[train],
        test_index=rows[test],
    )


def _prepare_local(config: LearningConfig) -> PreparedData:
    """A local dataset's own split, kept classes, preprocessing fitted on training rows."""
    local = load_local_dataset(config.dataset, config.data_dir)
    labels = np.asarray(config.class_labels)
    train = np.flatnonzero(np.isin(local.y_train, labels))
    test = np.flatnonzero(np.isin(local.y_test, labels))
    for split, rows in (("training", train), ("test", test)):
        if rows.size == 0:
            raise ValueError(
                f"dataset {config.dataset!r} in {config.data_dir!r} has no {split} sample of "
                f"classes {config.class_labels}"
            )
    prep = AnglePreprocessor.fit(local.x_train[train], config.n_qubits)
    return PreparedData(
        x_train=prep.transform(local.x_train[train]),
        y_train=np.searchsorted(labels, local.y_train[train]),
        x_test=prep.transform(local.x_test[test]),
        y_test=np.searchsorted(labels, local.y_test[test]),
        class_labels=tuple(int(c) for c in labels),
        preprocessor=prep,
        train_index=train,
        test_index=test,
    )
