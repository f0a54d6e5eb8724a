"""Small checks shared by the configs, so every bad value gets the same kind of message."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "require_choice",
    "require_fraction",
    "require_int",
    "require_int_tuple",
]


def require_int(name: str, value: Any, minimum: int) -> None:
    """Raise unless ``value`` is an ``int`` (not a bool) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")


def require_int_tuple(
    name: str,
    value: Any,
    minimum: int,
    length: int | None = None,
    length_of: str = "scale_list",
) -> None:
    """Raise unless ``value`` is a non-empty tuple of ints >= ``minimum`` (of ``length``, the
    length of the field ``length_of``)."""
    if not isinstance(value, tuple) or not value:
        raise TypeError(f"{name} must be a non-empty tuple of ints, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
            raise ValueError(f"{name} must hold ints >= {minimum}, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(
            f"{name} must have one entry per scale ({length}, the length of {length_of}), "
            f"got {len(value)}: {value!r}"
        )


def require_fraction(
    name: str, value: Any, *, low: float, high: float, low_inclusive: bool, high_inclusive: bool
) -> None:
    """Raise unless ``value`` is a finite real number in the given interval."""
    lo = "[" if low_inclusive else "("
    hi = "]" if high_inclusive else ")"
    allowed = f"a number in {lo}{low}, {high}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    ok = math.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low)
    ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def require_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
