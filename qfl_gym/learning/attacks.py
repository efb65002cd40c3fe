r"""Malicious devices (poisoning) and the limits of the robust aggregation rules.

A fraction of the K devices is malicious (Byzantine). They train like everyone else
and then poison what they upload. With :math:`\Delta_k` the honest update the device
computed and :math:`s` = ``attack_scale``:

==============  ==========================================================================
``attack``      what a malicious device uploads
==============  ==========================================================================
``sign-flip``   :math:`-s\,\Delta_k`: the reversed (and amplified) update; pulls the model
                back up the loss (Damaskinos et al. 2018; Fang et al., USENIX Sec. 2020)
``scaled``      :math:`s\,\Delta_k`: a boosted update that dominates a mean (model
                replacement, Bagdasaryan et al., AISTATS 2020)
``random``      :math:`s\,\lVert\Delta_k\rVert\, u`, :math:`u` uniform on the unit sphere:
                noise of the norm of an amplified honest update (Blanchard et al.
                2017's Gaussian Byzantine devices)
``label-flip``  the honest update computed on poisoned data: every label :math:`y` of
                its shard is replaced by :math:`C - 1 - y` at reset (Tolpegin et al.,
                ESORICS 2020); the device otherwise follows the protocol
==============  ==========================================================================

Update attacks bypass client-side DP clipping and noise (a malicious client does not
run the honest code); label flippers run it on their poisoned data.

Which devices are malicious: ``round(attacker_fraction * K)`` of them (half up), drawn
without replacement at every reset from a generator spawned from the learner's (so
the honest devices' training is the same with and without attackers), or the fixed
indices ``attackers``.

Robust rules and what they tolerate
-----------------------------------
With :math:`f` malicious devices among :math:`K` (checked when a scenario or learner
is built: a ``ValueError`` names the field and the limit) and :math:`\beta` =
``robust_fraction``:

- ``median`` (coordinate-wise, Yin et al., ICML 2018): :math:`f < K/2`;
- ``trimmed-mean`` (Yin et al. 2018) trims :math:`b = \lceil\beta M\rceil` of the
  :math:`M` delivered values per side and coordinate: needs
  :math:`\lceil\beta K\rceil \ge f` and :math:`\beta < 1/2`;
- ``krum`` (Blanchard et al., NeurIPS 2017) assumes :math:`f_\beta = \lceil\beta
  M\rceil` Byzantine updates: needs :math:`\lceil\beta K\rceil \ge f` and
  :math:`K > 2\lceil\beta K\rceil + 2`;
- ``fedavg`` and ``mean`` tolerate no attacker; they are allowed with any fraction as
  the undefended baseline.

The checks use all K devices; a round aggregates only the delivered ones, among which
the attackers' share can be larger (the rules then clamp their trim/assumed counts
to what :math:`M` allows, see :mod:`qfl_gym.learning.aggregation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from qfl_gym.config_fields import ConfigFields, param
from qfl_gym.learning.aggregation import robust_count
from qfl_gym.validation import check_choice, check_float, check_int, check_probability

ATTACKS = ("sign-flip", "scaled", "random", "label-flip")
#: attacks that replace the uploaded update (the others poison the data)
UPDATE_ATTACKS = ("sign-flip", "scaled", "random")
#: aggregation rules with a documented tolerance (checked by :func:`check_robustness`)
ROBUST_RULES = ("median", "trimmed-mean", "krum")


@dataclass(frozen=True)
class PoisoningConfig(ConfigFields):
    """Malicious devices and the tolerance the robust aggregation rules assume.

    No attackers by default. The aggregation rule itself is
    :attr:`~qfl_gym.learning.config.LearningConfig.aggregation`.
    """

    attacker_fraction: float = param(
        0.0,
        "-",
        "fraction of malicious devices in [0, 1]: round(fraction * K) of them, drawn at "
        "every reset (ignored when attackers is given)",
    )
    attackers: tuple[int, ...] | None = param(
        None, "-", "fixed indices of the malicious devices (sets attacker_fraction aside)"
    )
    attack: str = param(
        "sign-flip", "-", f"what malicious devices do: {', '.join(ATTACKS)}", "see module doc"
    )
    attack_scale: float = param(
        4.0,
        "-",
        "s: sign-flip uploads -s Delta, scaled s Delta, random a random direction of norm "
        "s ||Delta|| (unused by label-flip)",
        "chosen: with 20% attackers, 4 cancels FedAvg's mean update",
    )
    robust_fraction: float = param(
        0.2,
        "-",
        "beta in [0, 0.5): trimmed-mean trims ceil(beta M) of M values per side; krum "
        "assumes ceil(beta M) Byzantine updates",
        "Yin et al. 2018; Blanchard et al. 2017",
    )
    krum_select: int = param(
        1, "-", "m: average of the m best-scored updates (1: Krum; > 1: multi-Krum)"
    )

    def __post_init__(self) -> None:
        check_probability("attacker_fraction", self.attacker_fraction)
        if self.attackers is not None:
            if isinstance(self.attackers, str | bytes) or not hasattr(self.attackers, "__iter__"):
                raise ValueError(
                    f"attackers must be a sequence of device indices or None, got "
                    f"{self.attackers!r}"
                )
            ids = tuple(
                check_int(f"attackers[{i}]", a, low=0) for i, a in enumerate(self.attackers)
            )
            if len(set(ids)) != len(ids):
                raise ValueError(f"attackers must not repeat a device, got {ids}")
            if ids and self.attacker_fraction:
                raise ValueError(
                    f"give attacker_fraction ({self.attacker_fraction}) or attackers "
                    f"({ids}), not both"
                )
            object.__setattr__(self, "attackers", tuple(sorted(ids)))
        check_choice("attack", self.attack, ATTACKS)
        check_float("attack_scale", self.attack_scale, low=0.0, high=1e6, low_inclusive=False)
        check_float(
            "robust_fraction", self.robust_fraction, low=0.0, high=0.5, high_inclusive=False
        )
        check_int("krum_select", self.krum_select, low=1)

    # ----------------------------------------------------------------- derived
    def num_attackers(self, num_devices: int) -> int:
        """f, the number of malicious devices among ``num_devices``."""
        if self.attackers is not None:
            return len(self.attackers)
        return math.floor(self.attacker_fraction * num_devices + 0.5)

    @property
    def update_attack(self) -> bool:
        """Whether malicious devices replace their uploaded update."""
        return self.attack in UPDATE_ATTACKS

    def rule_options(self, rule: str) -> dict[str, Any]:
        """Keyword options of the aggregation ``rule`` from this config."""
        if rule == "trimmed-mean":
            return {"trim_fraction": self.robust_fraction}
        if rule == "krum":
            return {"byzantine_fraction": self.robust_fraction, "num_selected": self.krum_select}
        return {}

    def _related_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Explicit attackers clear the fraction, and a fraction clears explicit attackers."""
        if "attackers" in changes and changes["attackers"] and "attacker_fraction" not in changes:
            changes["attacker_fraction"] = 0.0
        if changes.get("attacker_fraction") and "attackers" not in changes:
            changes["attackers"] = None
        return changes


def check_robustness(rule: str, poisoning: PoisoningConfig, num_devices: int) -> int:
    """Check that ``rule`` tolerates the configured attackers among K devices.

    Returns f; raises ``ValueError`` naming the field and the limit otherwise (and for
    attacker indices outside ``0..K-1``).
    """
    K = int(num_devices)
    if poisoning.attackers is not None and poisoning.attackers and poisoning.attackers[-1] >= K:
        raise ValueError(
            f"attackers must be device indices in 0..{K - 1}, got {poisoning.attackers}"
        )
    f = poisoning.num_attackers(K)
    if f == 0 or rule not in ROBUST_RULES:
        return f
    what = (
        f"attackers={poisoning.attackers}"
        if poisoning.attackers is not None
        else f"attacker_fraction={poisoning.attacker_fraction}"
    )
    if rule == "median":
        if 2 * f >= K:
            raise ValueError(
                f"attacker_fraction: the coordinate-wise median tolerates fewer than half "
                f"malicious devices (f < K/2 = {K / 2:g}), got f={f} of K={K} ({what})"
            )
        return f
    b = robust_count(poisoning.robust_fraction, K)
    if b < f:
        raise ValueError(
            f"robust_fraction: aggregation {rule!r} must cover the malicious devices, "
            f"ceil(robust_fraction * K) = {b} >= f = {f}; got robust_fraction="
            f"{poisoning.robust_fraction} with {what}, K={K} (raise robust_fraction to >= "
            f"{f / K:g})"
        )
    if rule == "krum" and 2 * b + 2 >= K:
        raise ValueError(
            f"robust_fraction: krum needs K > 2f + 2 with f = ceil(robust_fraction * K) = "
            f"{b}, i.e. K > {2 * b + 2}; got K={K} ({what}, robust_fraction="
            f"{poisoning.robust_fraction})"
        )
    return f


# -------------------------------------------------------------------- attacks
def choose_attackers(
    rng: np.random.Generator, poisoning: PoisoningConfig, num_devices: int
) -> np.ndarray:
    """Malicious-device mask (K,) bool: the fixed indices or ``f`` drawn from ``rng``.

    Draws nothing when the indices are fixed or f = 0.
    """
    mask = np.zeros(num_devices, dtype=bool)
    if poisoning.attackers is not None:
        mask[list(poisoning.attackers)] = True
        return mask
    f = poisoning.num_attackers(num_devices)
    if f:
        mask[rng.choice(num_devices, size=f, replace=False)] = True
    return mask


def poison_updates(
    deltas: np.ndarray,
    malicious: np.ndarray,
    attack: str,
    scale: float,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The uploaded updates (K, P): ``deltas`` with the malicious rows replaced.

    ``attack="random"`` draws ``f * P`` normals from ``rng`` (f malicious rows);
    ``label-flip`` leaves the updates unchanged (its poison is in the data).
    """
    check_choice("attack", attack, ATTACKS)
    out = np.array(deltas, dtype=float, copy=True)
    if attack == "label-flip" or not malicious.any():
        return out
    rows = out[malicious]
    if attack == "sign-flip":
        out[malicious] = -scale * rows
    elif attack == "scaled":
        out[malicious] = scale * rows
    else:  # random
        u = rng.standard_normal(rows.shape)
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
        out[malicious] = scale * np.linalg.norm(rows, axis=1, keepdims=True) * u
    return out


def flip_labels(
    labels: np.ndarray,
    num_classes: int,
    malicious: np.ndarray,
    counts: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:
    """Labels (M,) with each malicious device's shard flipped ``y -> C - 1 - y``.

    Device ``k`` owns rows ``offsets[k] : offsets[k] + counts[k]``. Returns a new array.
    """
    out = np.array(labels, copy=True)
    for k in np.flatnonzero(malicious):
        sl = slice(int(offsets[k]), int(offsets[k] + counts[k]))
        out[sl] = num_classes - 1 - out[sl]
    return out
