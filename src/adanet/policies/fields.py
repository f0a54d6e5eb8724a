"""The validated fields of a threshold policy and their JSON encoding."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torch import bool as torch_bool

from adanet._validation import is_int, is_real

__all__ = [
    "check_context",
    "check_keys",
    "check_temperatures",
    "decode_threshold",
    "encode_threshold",
    "float_tuple",
    "normalise_input_size",
]


def encode_threshold(value: float) -> float | str:
    """``inf`` / ``-inf`` as strings (JSON has no infinities), other values unchanged."""
    # JSON has no infinities; strings keep the file standard-conforming and readable.
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    return value


def decode_threshold(value: Any) -> float:
    """Inverse of :func:`encode_threshold`; raises ValueError on anything else."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
    elif is_real(value):
        try:
            return float(value)
        except OverflowError:  # a JSON integer beyond float's range
            pass
    raise ValueError(f"cannot decode threshold {value!r}; expected a number, 'inf' or '-inf'")


def _is_real(value: object) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex() and value.dtype != torch_bool
    return is_real(value)


def float_tuple(name: str, values: Any) -> tuple[float, ...]:
    """``values`` as a tuple of floats; raises TypeError naming ``name`` otherwise.

    Every item must be a real number (a bool or a string such as ``"2"`` is not one), so a
    document that JSON-encodes numbers as strings is refused rather than guessed at.
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | Tensor):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}")
    if isinstance(values, Tensor):
        if values.dtype == torch_bool or values.is_complex():
            raise TypeError(f"{name} must hold real numbers, got a {values.dtype} tensor")
        return tuple(float(t) for t in values.reshape(-1).tolist())
    items = list(values)
    if not all(_is_real(t) for t in items):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}")
    try:
        return tuple(float(t) for t in items)
    except OverflowError:  # a JSON integer beyond float's range
        raise TypeError(f"{name} holds a number beyond float's range: {values!r}") from None


def check_keys(d: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
    """Refuse a mapping with keys outside ``allowed``: a misspelt key would otherwise be
    dropped without a word (``"temperature"`` for ``"temperatures"``).

    Raises:
        ValueError: Naming the unknown keys and the allowed ones.
    """
    unknown = sorted(str(key) for key in d if key not in allowed)
    if unknown:
        raise ValueError(
            f"unknown {what} keys {unknown}; allowed: {', '.join(repr(k) for k in allowed)}"
        )


def check_temperatures(temperatures: Any, num_exits: int) -> tuple[float, ...] | None:
    """``None`` or one positive finite temperature per exit, as a tuple of floats."""
    if temperatures is None:
        return None
    values = float_tuple("temperatures", temperatures)
    if len(values) != num_exits:
        raise ValueError(f"temperatures has {len(values)} entries for {num_exits} exits")
    if any(not math.isfinite(t) or t <= 0.0 for t in values):
        raise ValueError(f"temperatures must be positive and finite, got {list(values)}")
    return values


def normalise_input_size(input_size: Any) -> tuple[int, int] | None:
    """``None``, ``S``, ``(H, W)`` or ``(C, H, W)`` as ``(H, W)``."""
    if input_size is None:
        return None
    if is_int(input_size):
        values: tuple[int, ...] = (input_size, input_size)
    elif isinstance(input_size, Sequence) and not isinstance(input_size, str | bytes):
        if any(not is_int(v) for v in input_size):
            raise TypeError(f"input_size must hold ints, got {input_size!r}")
        if len(input_size) not in (2, 3) or min(input_size) < 1:
            raise ValueError(
                f"input_size must be S, (H, W) or (C, H, W) of positive ints, got {input_size!r}"
            )
        values = tuple(input_size)[-2:]
    else:
        raise TypeError(f"input_size must be S, (H, W) or (C, H, W), got {input_size!r}")
    if len(values) != 2 or min(values) < 1:
        raise ValueError(
            f"input_size must be S, (H, W) or (C, H, W) of positive ints, got {input_size!r}"
        )
    return (values[0], values[1])


def check_context(num_classes: Any, cost_convention: Any) -> None:
    """Raises ValueError unless both are ``None`` or valid recorded values."""
    if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
        raise ValueError(f"num_classes must be None or an int >= 1, got {num_classes!r}")
    if cost_convention is not None and (
        not isinstance(cost_convention, str) or not cost_convention
    ):
        raise ValueError(
            f"cost_convention must be None or a non-empty string, got {cost_convention!r}"
        )
