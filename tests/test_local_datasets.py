"""MNIST / Fashion-MNIST (IDX) and CIFAR-10 (pickle batches) from local files.

Every test writes small files in the real formats into a temporary folder.
"""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.data import AnglePreprocessor, prepare_data, split_counts, train_size
from qfl_gym.learning.datasets import (
    CIFAR_FILES,
    IDX_FILES,
    block_mean,
    load_local_dataset,
    read_idx,
)


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """An IDX file (unsigned bytes) as LeCun's MNIST distribution stores it."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def class_images(labels: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """Grey images ``(M, side, side)`` uint8 whose bright 4x4 block sits where the label says."""
    images = rng.integers(0, 40, size=(labels.size, side, side)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), side // 4)
        images[i, 4 * r : 4 * r + 4, 4 * col : 4 * col + 4] = 250
    return images


def make_idx_dir(folder, n_train=60, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    y_train = np.arange(n_train) % 10
    y_test = np.arange(n_test) % 10
    write_idx(folder / "train-images-idx3-ubyte", class_images(y_train, 28, rng), gz)
    write_idx(folder / "train-labels-idx1-ubyte", y_train, gz)
    write_idx(folder / "t10k-images-idx3-ubyte", class_images(y_test, 28, rng), gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz)
    return folder


def make_cifar_dir(folder, per_batch=12, seed=0):
    """The python version of CIFAR-10: pickled dicts with b'data' (M, 3072) and b'labels'."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_FILES:
        labels = rng.integers(0, 10, per_batch)
        grey = class_images(labels, 32, rng)
        data = np.stack([grey, grey, grey], axis=1).reshape(per_batch, 3072)  # R, G, B planes
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


# ------------------------------------------------------------------ readers
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_header_shape_and_bytes(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    path = tmp_path / ("a-idx3-ubyte.gz" if gz else "a-idx3-ubyte")
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_rejects_a_truncated_file(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 4), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="holds"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "y")


def test_block_mean_averages_4x4_blocks_and_crops_the_rest():
    images = np.arange(2 * 9 * 9, dtype=float).reshape(2, 9, 9)
    out = block_mean(images, 4)
    assert out.shape == (2, 4)
    assert out[1, 3] == pytest.approx(images[1, 4:8, 4:8].mean())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_keeps_its_split_and_downsamples_to_7x7(tmp_path, name, gz):
    make_idx_dir(tmp_path, gz=gz)
    local = load_local_dataset(name, tmp_path)
    assert local.x_train.shape == (60, 49) and local.x_test.shape == (20, 49)
    np.testing.assert_array_equal(local.y_train, np.arange(60) % 10)
    raw = read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    assert local.x_train[7, 8] == pytest.approx(raw[7, 4:8, 4:8].mean() / 255.0)
    # the bright block of label c is feature (c // 7) * 7 + c % 7
    assert np.all(local.x_train.argmax(axis=1) == (local.y_train // 7) * 7 + local.y_train % 7)
    assert not local.x_train.flags.writeable


def test_cifar_batches_become_grey_8x8_and_the_subfolder_is_found(tmp_path):
    make_cifar_dir(tmp_path / "cifar-10-batches-py", per_batch=12)
    local = load_local_dataset("cifar10", tmp_path)
    assert local.x_train.shape == (60, 64) and local.x_test.shape == (12, 64)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    rgb = batch[b"data"][3].reshape(3, 32, 32) / 255.0
    grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    assert local.x_train[12 + 3, 9] == pytest.approx(grey[4:8, 4:8].mean())
    np.testing.assert_array_equal(local.y_train[12:24], batch[b"labels"])


# ------------------------------------------------------------------- config
@pytest.mark.parametrize(("name", "expected"), [("mnist", IDX_FILES), ("cifar10", CIFAR_FILES)])
def test_missing_files_are_named_in_the_error(tmp_path, name, expected):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(ValueError, match="data_dir") as exc:
        LearningConfig(dataset=name, data_dir=str(tmp_path))
    for f in expected:
        assert f in str(exc.value)
    assert "downloaded" in str(exc.value)
    with pytest.raises(ValueError, match="not a folder"):
        LearningConfig(dataset=name, data_dir=str(tmp_path / "nowhere"))


def test_data_dir_is_required_for_local_and_refused_for_bundled(tmp_path):
    with pytest.raises(ValueError, match=r"data_dir.*train-images-idx3-ubyte"):
        LearningConfig(dataset="fashion-mnist")
    with pytest.raises(ValueError, match="data_dir is only"):
        LearningConfig(dataset="digits", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="data_dir must be a folder"):
        LearningConfig(dataset="mnist", data_dir=3)


def test_prepare_data_fits_pca_on_the_training_split_only(tmp_path):
    make_idx_dir(tmp_path)
    cfg = LearningConfig(dataset="mnist", data_dir=tmp_path, classes=(1, 3, 5), n_qubits=4)
    assert isinstance(cfg.data_dir, str)
    a = prepare_data(cfg, np.random.default_rng(0))
    b = prepare_data(cfg, np.random.default_rng(99))  # the own split draws nothing
    np.testing.assert_array_equal(a.x_train, b.x_train)
    local = load_local_dataset("mnist", tmp_path)
    rows = np.isin(local.y_train, (1, 3, 5))
    fitted = AnglePreprocessor.fit(local.x_train[rows], 4)
    np.testing.assert_allclose(a.x_train, fitted.transform(local.x_train[rows]))
    np.testing.assert_allclose(
        a.x_test, fitted.transform(local.x_test[np.isin(local.y_test, (1, 3, 5))])
    )
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= np.pi
    assert set(a.y_train.tolist()) == {0, 1, 2}
    n_train, n_test = split_counts(cfg)
    assert n_train.tolist() == [6, 6, 6] and n_test.tolist() == [2, 2, 2]
    assert train_size(cfg) == a.x_train.shape[0] == 18


def test_qfl_env_trains_on_local_mnist_files(tmp_path):
    import gymnasium as gym

    import qfl_gym  # noqa: F401  (registers the ids)

    make_idx_dir(tmp_path, n_train=200, n_test=40)
    env = gym.make(
        "qfl_gym/QFL-v0",
        scenario="small",
        dataset="mnist",
        data_dir=str(tmp_path),
        classes=(0, 1),
        num_devices=4,
        rounds=3,
    )
    _, info = env.reset(seed=0)
    accuracy = []
    for _ in range(3):
        _, _, _, _, info = env.step(env.action_space.sample())
        accuracy.append(info["global_accuracy"])
    assert env.unwrapped.learner.data.x_test.shape == (8, 4)  # the files' own test split
    assert all(0.0 <= a <= 1.0 for a in accuracy)
    env.close()
