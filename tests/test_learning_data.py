"""Datasets, preprocessing, partitions and the learning config's validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfl_gym.learning.config import DATASETS, LearningConfig
from qfl_gym.learning.data import (
    AnglePreprocessor,
    load_dataset,
    prepare_data,
    split_counts,
    train_size,
)
from qfl_gym.learning.partition import dirichlet_partition, iid_partition, partition_samples


# ------------------------------------------------------------------ datasets
@pytest.mark.parametrize("name", list(DATASETS))
def test_bundled_datasets_match_their_static_facts(name):
    x, y = load_dataset(name)
    info = DATASETS[name]
    assert x.shape == (info.num_samples, info.num_features)
    assert tuple(np.bincount(y)) == info.class_counts
    assert not x.flags.writeable  # cached arrays are shared: read-only


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="dataset") as exc:
        LearningConfig(dataset="imagenet")
    for name in DATASETS:
        assert name in str(exc.value)
    with pytest.raises(ValueError, match="digits"):
        load_dataset("cifar10")


# ------------------------------------------------------------- preprocessing
def test_angles_in_range_and_fitted_on_the_training_split_only():
    cfg = LearningConfig(dataset="wine", classes=None, n_qubits=3)
    data = prepare_data(cfg, np.random.default_rng(0))
    for x in (data.x_train, data.x_test):
        assert x.shape[1] == 3
        assert np.all((x >= 0.0) & (x <= np.pi))
    # min-max fitted on train: every training component spans exactly [0, pi]
    np.testing.assert_allclose(data.x_train.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.x_train.max(axis=0), np.pi, atol=1e-12)
    # the fitted statistics are those of the training rows, not of all rows
    x_all, _ = load_dataset("wine")
    prep = data.preprocessor
    np.testing.assert_allclose(prep.mean, x_all[data.train_index].mean(axis=0))
    assert not np.allclose(prep.mean, x_all.mean(axis=0))
    refit = AnglePreprocessor.fit(x_all[data.train_index], 3)
    np.testing.assert_allclose(refit.transform(x_all[data.test_index]), data.x_test)
    assert not set(data.train_index) & set(data.test_index)


def test_pca_components_are_orthonormal_principal_axes():
    x, _ = load_dataset("breast_cancer")
    prep = AnglePreprocessor.fit(x, 4)
    comp = prep.components
    np.testing.assert_allclose(comp.T @ comp, np.eye(4), atol=1e-10)
    z = (x - prep.mean) / prep.scale
    variances = (z @ comp).var(axis=0)
    assert np.all(np.diff(variances) <= 1e-9)  # sorted by explained variance
    # the first axis explains the most variance of any unit direction we try
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(50, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    assert variances[0] >= (z @ dirs.T).var(axis=0).max()


def test_fewer_features_than_qubits_reuses_components_cyclically():
    cfg = LearningConfig(dataset="iris", classes=None, n_qubits=6, readout="expval")
    data = prepare_data(cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(data.x_train[:, 4:], data.x_train[:, :2])


def test_split_is_seeded_stratified_and_sized_statically():
    cfg = LearningConfig(dataset="digits", classes=(1, 3, 5), test_fraction=0.25)
    a = prepare_data(cfg, np.random.default_rng(7))
    b = prepare_data(cfg, np.random.default_rng(7))
    c = prepare_data(cfg, np.random.default_rng(8))
    np.testing.assert_array_equal(a.train_index, b.train_index)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.train_index, c.train_index)
    n_train, n_test = split_counts(cfg)
    np.testing.assert_array_equal(np.bincount(a.y_train), n_train)
    np.testing.assert_array_equal(np.bincount(a.y_test), n_test)
    assert a.x_train.shape[0] == train_size(cfg)
    # class subset: dataset labels 1, 3, 5 become model classes 0, 1, 2
    _, y_all = load_dataset("digits")
    np.testing.assert_array_equal(y_all[a.train_index], np.array([1, 3, 5])[a.y_train])
    assert a.class_labels == (1, 3, 5)


# ----------------------------------------------------------------- partition
def _check_partition(part, num_samples, num_devices):
    assert part.counts.shape == (num_devices,)
    assert part.counts.min() >= 1
    assert part.indices.size == part.counts.sum()
    assert np.unique(part.indices).size == part.indices.size  # disjoint shards
    assert part.indices.min() >= 0 and part.indices.max() < num_samples
    joined = np.concatenate([part.device_indices(k) for k in range(num_devices)])
    np.testing.assert_array_equal(joined, part.indices)


def test_iid_partition_is_balanced_and_covers_everything():
    part = iid_partition(103, 10, np.random.default_rng(0))
    _check_partition(part, 103, 10)
    assert part.counts.max() - part.counts.min() <= 1
    assert part.counts.sum() == 103


def test_dirichlet_partition_is_label_skewed_with_unequal_counts():
    labels = np.repeat(np.arange(4), 150)
    rng = np.random.default_rng(3)
    skewed = dirichlet_partition(labels, 8, 0.1, rng)
    mild = dirichlet_partition(labels, 8, 1000.0, np.random.default_rng(3))
    for part in (skewed, mild):
        _check_partition(part, labels.size, 8)
        assert part.counts.sum() == labels.size
    assert skewed.counts.std() > mild.counts.std()

    def dominant_share(part):  # share of the most common class on each device
        return np.mean(
            [np.bincount(labels[part.device_indices(k)]).max() / part.counts[k] for k in range(8)]
        )

    assert dominant_share(skewed) > 0.8
    assert dominant_share(mild) < 0.4


@settings(max_examples=40, deadline=None)
@given(
    num_devices=st.integers(1, 40),
    extra=st.integers(0, 60),
    alpha=st.floats(0.01, 50.0),
    cap=st.one_of(st.none(), st.integers(1, 10)),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_device_gets_at_least_one_sample(num_devices, extra, alpha, cap, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, num_devices + extra)
    for scheme in ("iid", "dirichlet"):
        part = partition_samples(
            labels,
            num_devices,
            np.random.default_rng(seed),
            scheme=scheme,
            alpha=alpha,
            samples_per_device=cap,
        )
        _check_partition(part, labels.size, num_devices)
        if cap is not None:
            assert part.counts.max() <= cap


def test_too_small_a_dataset_for_the_devices_is_a_clear_error():
    labels = np.arange(5) % 2
    for scheme in ("iid", "dirichlet"):
        with pytest.raises(ValueError, match="too few for num_devices=6"):
            partition_samples(labels, 6, np.random.default_rng(0), scheme=scheme)


# -------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"n_qubits": 1}, "n_qubits"),
        ({"n_qubits": 11}, "n_qubits"),
        ({"n_qubits": 4.0}, "n_qubits"),
        ({"classes": None}, "classes"),  # 10 digits on 4 qubits with expval readout
        ({"classes": (0, 1, 2, 3, 4), "n_qubits": 4}, "classes"),
        ({"classes": (0, 10)}, "classes"),
        ({"classes": (2, 2)}, "classes"),
        ({"classes": (3,)}, "classes"),
        ({"dirichlet_alpha": 0.0}, "dirichlet_alpha"),
        ({"dirichlet_alpha": -1.0}, "dirichlet_alpha"),
        ({"dataset": "cifar10"}, "dataset"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"backend": "qiskit"}, "backend"),
        ({"aggregation": "krum-typo"}, "aggregation"),
        ({"partition": "shards"}, "partition"),
        ({"samples_per_device": 0}, "samples_per_device"),
        ({"torch_threads": 0}, "torch_threads"),
    ],
)
def test_bad_learning_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LearningConfig(**kwargs)


def test_linear_readout_allows_more_classes_than_qubits():
    cfg = LearningConfig(classes=None, n_qubits=4, readout="linear")
    assert cfg.num_classes == 10
    assert cfg.num_parameters == 3 * 2 * 4 + 10 * (4 + 1)


def test_replace_validates_and_rejects_unknown_names():
    cfg = LearningConfig()
    assert cfg.replace(n_layers=3).n_layers == 3
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_qubit'.*valid:.*n_qubits"):
        cfg.replace(n_qubit=3)
    with pytest.raises(ValueError, match="n_qubits"):
        cfg.replace(n_qubits=12)
