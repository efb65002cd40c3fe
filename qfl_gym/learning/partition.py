r"""Splitting the training set over K devices: IID and label-skewed Dirichlet.

- **IID**: the training samples are shuffled and dealt into K shards of equal size
  (sizes differ by at most one).
- **Dirichlet** (label skew with unequal sample counts, as in Hsu, Qi and Brown,
  "Measuring the effects of non-identical data distribution for federated visual
  classification", 2019, in the per-class form common in FL benchmarks): for every class
  ``c`` a proportion vector :math:`p_c \sim \mathrm{Dir}(\alpha \mathbf{1}_K)` is drawn and
  the class's shuffled samples are cut at :math:`\lfloor n_c \,\mathrm{cumsum}(p_c)\rfloor`.
  Small :math:`\alpha` gives each device few classes and very different sample counts;
  :math:`\alpha \to \infty` approaches IID.

Every device receives at least one sample: a device left empty by the Dirichlet draw
takes one sample from the currently largest shard. A training set smaller than K raises
``ValueError``. ``samples_per_device`` caps every shard (the first samples of each
shuffled shard are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Partition:
    """Device shards as one index array grouped by device.

    Attributes
    ----------
    indices : ndarray of int64, shape (M,)
        Training-sample indices; device ``k`` owns
        ``indices[offsets[k] : offsets[k] + counts[k]]``.
    counts : ndarray of int64, shape (K,)
        Samples per device ``n_k`` (all >= 1).
    offsets : ndarray of int64, shape (K,)
        Start of each device's block in :attr:`indices`.
    """

    indices: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_assignment(cls, device: np.ndarray, num_devices: int) -> Partition:
        """From the device id of every sample (-1: unused); order within a device kept."""
        used = np.flatnonzero(device >= 0)
        order = used[np.argsort(device[used], kind="stable")]
        counts = np.bincount(device[used], minlength=num_devices).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(order.astype(np.int64), counts, offsets)

    @property
    def num_devices(self) -> int:
        return self.counts.shape[0]

    def device_indices(self, k: int) -> np.ndarray:
        """Training-sample indices of device ``k``."""
        return self.indices[self.offsets[k] : self.offsets[k] + self.counts[k]]

    def device_of_sample(self) -> np.ndarray:
        """Device of every entry of :attr:`indices`, shape (M,)."""
        return np.repeat(np.arange(self.num_devices), self.counts)


def _check_enough(num_samples: int, num_devices: int, what: str) -> None:
    if num_samples < num_devices:
        raise ValueError(
            f"{what} has {num_samples} training samples, too few for num_devices="
            f"{num_devices}: every device needs at least one (use fewer devices, more "
            "classes, a larger dataset or a smaller test_fraction)"
        )


def iid_partition(
    num_samples: int,
    num_devices: int,
    rng: np.random.Generator,
    samples_per_device: int | None = None,
    what: str = "the dataset",
) -> Partition:
    """Shuffle ``num_samples`` samples into ``num_devices`` near-equal shards."""
    _check_enough(num_samples, num_devices, what)
    perm = rng.permutation(num_samples)
    device = np.full(num_samples, -1, dtype=np.int64)
    total = num_samples
    if samples_per_device is not None:
        total = min(num_samples, num_devices * samples_per_device)
    # sample perm[i] goes to device floor(i * K / total): sizes differ by at most one
    device[perm[:total]] = (np.arange(total) * num_devices) // total
    return Partition.from_assignment(device, num_devices)


def dirichlet_partition(
    labels: np.ndarray,
    num_devices: int,
    alpha: float,
    rng: np.random.Generator,
    samples_per_device: int | None = None,
    what: str = "the dataset",
) -> Partition:
    """Label-skewed shards: each class split over devices by ``Dir(alpha * 1_K)``."""
    if not alpha > 0:
        raise ValueError(f"dirichlet_alpha must be > 0, got {alpha}")
    labels = np.asarray(labels)
    M, K = labels.shape[0], num_devices
    _check_enough(M, K, what)
    num_classes = int(labels.max()) + 1
    props = rng.dirichlet(np.full(K, float(alpha)), size=num_classes)  # (C, K)
    keys = rng.random(M)
    order = np.lexsort((keys, labels))  # by class, random within class
    counts_c = np.bincount(labels, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(counts_c)[:-1]])
    rank = np.arange(M) - np.repeat(starts, counts_c)  # position within its class
    cuts = np.floor(np.cumsum(props, axis=1) * counts_c[:, None]).astype(np.int64)
    cuts[:, -1] = counts_c  # guard against round-off in the last cut
    cls_sorted = labels[order]
    device = np.empty(M, dtype=np.int64)
    # device of the r-th sample of class c: number of cuts of c at or below r
    # (one searchsorted over all classes: class c's cuts are shifted by c * (M + 1))
    shift = np.arange(num_classes)[:, None] * (M + 1)
    found = np.searchsorted((cuts + shift).ravel(), cls_sorted * (M + 1) + rank, side="right")
    device[order] = found - cls_sorted * K
    counts = np.bincount(device, minlength=K)
    for k in np.flatnonzero(counts == 0):  # give empty devices one sample each
        donor = int(counts.argmax())
        sample = np.flatnonzero(device == donor)[rng.integers(counts[donor])]
        device[sample] = k
        counts[donor] -= 1
        counts[k] += 1
    if samples_per_device is not None:
        # keep the first samples_per_device of each device in a random order
        perm = rng.permutation(M)
        by_dev = perm[np.argsort(device[perm], kind="stable")]
        dev_sorted = device[by_dev]
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(M) - first[dev_sorted]
        device[by_dev[pos >= samples_per_device]] = -1
    return Partition.from_assignment(device, K)


def partition_samples(
    labels: np.ndarray,
    num_devices: int,
    rng: np.random.Generator,
    *,
    scheme: str = "iid",
    alpha: float = 0.5,
    samples_per_device: int | None = None,
    what: str = "the dataset",
) -> Partition:
    """Split training samples with class indices ``labels`` (M,) over devices.

    Parameters
    ----------
    labels : ndarray of int, shape (M,)
        Class index of each training sample.
    num_devices : int
        K.
    rng : numpy.random.Generator
        Source of every random choice.
    scheme : {"iid", "dirichlet"}
        Partition scheme (see module doc).
    alpha : float
        Dirichlet concentration (> 0).
    samples_per_device : int, optional
        Cap on samples per device.
    what : str
        Description of the dataset for error messages.
    """
    if scheme == "iid":
        return iid_partition(labels.shape[0], num_devices, rng, samples_per_device, what)
    if scheme == "dirichlet":
        return dirichlet_partition(labels, num_devices, alpha, rng, samples_per_device, what)
    raise ValueError(f"unknown partition {scheme!r}; valid: 'iid', 'dirichlet'")
