r"""MNIST, Fashion-MNIST and CIFAR-10 read from local files (never downloaded).

The files are the datasets' standard distributions, placed by the user in a folder
(``LearningConfig.data_dir``):

- **MNIST** and **Fashion-MNIST** (IDX format, LeCun et al.; Xiao et al. 2017):
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``), directly in
  ``data_dir``. 28 x 28 grey images, labels 0-9.
- **CIFAR-10** (python version, Krizhevsky 2009): the pickled batches ``data_batch_1``
  .. ``data_batch_5`` and ``test_batch``, in ``data_dir`` or in its
  ``cifar-10-batches-py/`` subfolder (as the archive unpacks). 32 x 32 RGB images,
  labels 0-9. The batches are python pickles: only read files you trust.

The datasets' own train/test split is kept (``test_fraction`` does not apply).

Reduction to few features (:func:`load_local_dataset`), before the PCA of
:mod:`qfl_gym.learning.data` (fitted on the training split only):

1. pixel values scaled to [0, 1] (divided by 255);
2. CIFAR-10 converted to grey with the ITU-R BT.601 luma weights
   ``0.299 R + 0.587 G + 0.114 B``;
3. block-average downsampling by :data:`POOL` (4 x 4 pixel blocks; rows/columns that do
   not fill a block are cropped): 28 x 28 -> 7 x 7 = 49 features, 32 x 32 -> 8 x 8 = 64.

So the PCA sees at most 64 features per image (a cheap SVD on the training matrix),
like scikit-learn's 8 x 8 digits.

This module imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: side of the square pixel blocks averaged into one feature
POOL = 4
#: ITU-R BT.601 luma weights of R, G, B
LUMA = np.array([0.299, 0.587, 0.114])
CIFAR_SUBFOLDER = "cifar-10-batches-py"
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True)
class LocalDatasetInfo:
    """Static facts of a dataset read from local files."""

    format: str  # "idx" or "cifar"
    num_classes: int
    files: tuple[str, ...]
    description: str


#: The datasets read from ``data_dir`` (standard file names, no download).
LOCAL_DATASETS: dict[str, LocalDatasetInfo] = {
    "mnist": LocalDatasetInfo("idx", 10, IDX_FILES, "MNIST handwritten digits, IDX files"),
    "fashion-mnist": LocalDatasetInfo(
        "idx", 10, IDX_FILES, "Fashion-MNIST clothing images, IDX files"
    ),
    "cifar10": LocalDatasetInfo(
        "cifar", 10, CIFAR_FILES, "CIFAR-10 python pickle batches (grey, downsampled)"
    ),
}


@dataclass(frozen=True, eq=False)
class LocalDataset:
    """A local dataset's official splits as downsampled features in [0, 1].

    Attributes
    ----------
    x_train, x_test : ndarray, shape (M, F) float64
        Block-averaged grey pixel values (read-only).
    y_train, y_test : ndarray of int64, shape (M,)
        Dataset labels (read-only).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _check_name(name: str) -> LocalDatasetInfo:
    if name not in LOCAL_DATASETS:
        raise ValueError(
            f"unknown local dataset {name!r}; valid: {', '.join(map(repr, LOCAL_DATASETS))}"
        )
    return LOCAL_DATASETS[name]


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (None: neither)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _cifar_folder(data_dir: Path) -> Path:
    sub = data_dir / CIFAR_SUBFOLDER
    return sub if sub.is_dir() and not (data_dir / "test_batch").exists() else data_dir


def missing_files(name: str, data_dir: str | os.PathLike) -> list[str]:
    """Expected files of dataset ``name`` that ``data_dir`` lacks (empty: all present)."""
    info = _check_name(name)
    folder = Path(data_dir)
    if info.format == "cifar":
        folder = _cifar_folder(folder)
    return [f for f in info.files if _find(folder, f) is None]


def check_data_dir(name: str, data_dir: str | os.PathLike) -> None:
    """``FileNotFoundError`` naming every expected file if ``data_dir`` is incomplete."""
    info = _check_name(name)
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data_dir: {str(folder)!r} is not a folder; dataset {name!r} "
            f"({info.description}) expects the files {', '.join(info.files)} there"
        )
    missing = missing_files(name, folder)
    if missing:
        where = (
            f"{str(folder)!r} or {str(folder / CIFAR_SUBFOLDER)!r}"
            if info.format == "cifar"
            else repr(str(folder))
        )
        gz = " (each optionally .gz)" if info.format == "idx" else ""
        raise FileNotFoundError(
            f"data_dir: dataset {name!r} ({info.description}) needs the files "
            f"{', '.join(info.files)}{gz} in {where}; missing: {', '.join(missing)}. "
            "Nothing is downloaded: copy the dataset's standard files there"
        )


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` allowed), shape from its header.

    Format: two zero bytes, a type byte (0x08 unsigned byte, ...), the number of
    dimensions, then each dimension as a big-endian uint32, then the data.
    """
    path = Path(path)
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r}: header says shape {shape} of {dtype} "
            f"({count * dtype.itemsize} bytes) but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def block_mean(images: np.ndarray, block: int = POOL) -> np.ndarray:
    """Average ``block`` x ``block`` pixel blocks of ``(M, H, W)`` images -> ``(M, F)``.

    Rows and columns that do not fill a whole block are cropped; images smaller than
    one block are kept whole (one block per pixel).
    """
    m, h, w = images.shape
    if h < block or w < block:
        block = 1
    h2, w2 = h // block, w // block
    x = images[:, : h2 * block, : w2 * block].reshape(m, h2, block, w2, block)
    return x.mean(axis=(2, 4)).reshape(m, h2 * w2)


def _read_idx_split(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{prefix} files in {str(folder)!r}: expected images (M, H, W) and labels (M,), "
            f"got {images.shape} and {labels.shape}"
        )
    return block_mean(images.astype(np.float64) / 255.0), labels.astype(np.int64)


def _read_cifar_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in names:
        path = _find(folder, name)
        with _open(path) as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] % 3 or data.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{str(path)!r}: expected data (M, 3 * H * W) uint8 and labels (M,), got "
                f"{data.shape} and {labels.shape}"
            )
        side = math.isqrt(data.shape[1] // 3)
        rgb = data.reshape(-1, 3, side, side).astype(np.float64) / 255.0
        grey = np.tensordot(LUMA, rgb, axes=([0], [1]))  # (M, H, W)
        xs.append(block_mean(grey))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


@lru_cache(maxsize=4)
def _load(name: str, data_dir: str) -> LocalDataset:
    info = _check_name(name)
    check_data_dir(name, data_dir)
    folder = Path(data_dir)
    if info.format == "idx":
        x_train, y_train = _read_idx_split(folder, "train")
        x_test, y_test = _read_idx_split(folder, "t10k")
    else:
        folder = _cifar_folder(folder)
        x_train, y_train = _read_cifar_batches(folder, CIFAR_FILES[:-1])
        x_test, y_test = _read_cifar_batches(folder, CIFAR_FILES[-1:])
    for arr in (x_train, y_train, x_test, y_test):
        arr.flags.writeable = False
    for split, y in (("training", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= info.num_classes):
            raise ValueError(
                f"dataset {name!r} in {data_dir!r}: {split} labels must be 0..."
                f"{info.num_classes - 1}, got {y.min()}..{y.max()}"
            )
    return LocalDataset(x_train, y_train, x_test, y_test)


def load_local_dataset(name: str, data_dir: str | os.PathLike) -> LocalDataset:
    """Official train/test splits of ``name`` from ``data_dir``, reduced (see module doc).

    Cached per (name, folder): the files are parsed once per process. Raises
    ``FileNotFoundError`` naming the expected files when some are missing.
    """
    return _load(name, str(Path(data_dir).resolve()))
