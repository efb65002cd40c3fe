"""Field validators shared by every configuration dataclass.

Each validator raises :class:`ValueError` whose message names the field, the value
received and what is allowed, so a bad configuration is caught at construction with
a message a user can act on, never deep inside numpy.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None:
        if low_inclusive and value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
        if not low_inclusive and value <= low:
            raise ValueError(f"{name} must be > {low}, got {value}")
    if high is not None:
        if high_inclusive and value > high:
            raise ValueError(f"{name} must be <= {high}, got {value}")
        if not high_inclusive and value >= high:
            raise ValueError(f"{name} must be < {high}, got {value}")
    return value


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as a float in ``[0, 1]``."""
    return check_float(name, value, low=0.0, high=1.0)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, choices))}")
    return value


def check_float_tuple(
    name: str, values: Any, *, min_len: int = 1, strictly_increasing: bool = False
) -> tuple[float, ...]:
    """Return ``values`` as a tuple of finite floats."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | Iterable):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    out = tuple(check_float(f"{name}[{i}]", v) for i, v in enumerate(values))
    if len(out) < min_len:
        raise ValueError(f"{name} must hold at least {min_len} value(s), got {len(out)}")
    if strictly_increasing and any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"{name} must be strictly increasing, got {out}")
    return out


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (numpy bools included)."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)
