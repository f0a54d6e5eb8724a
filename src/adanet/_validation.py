"""The checks every public function runs on its arguments, so each bad value gets the same
kind of message: a ``TypeError`` or ``ValueError`` naming the value and what is allowed.

* ``require_*``: ints, bools, fractions and choices.
* :func:`parse_input_size`: the one reading of an ``input_size`` argument (``S``, ``(H, W)`` or
  ``(C, H, W)``).
* :func:`check_costs`: per-exit cumulative costs (MACs, seconds, anything cumulative), so a
  NaN or negative cost can never turn into a NaN or negative mean cost.
* :func:`check_targets`: class-index targets. Accuracy is ``(prediction == target).mean()``;
  a target tensor of the wrong shape broadcasts (``[N, 1]`` against ``[N]`` gives an
  ``[N, N]`` comparison and an "accuracy" above 1), and float, bool or out-of-range targets
  are silently never (or wrongly) matched, so every scoring function checks its targets here.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeGuard

import torch
from torch import Tensor

__all__ = [
    "check_costs",
    "check_targets",
    "is_int",
    "is_real",
    "parse_input_size",
    "require_bool",
    "require_choice",
    "require_fraction",
    "require_index",
    "require_int",
    "require_int_tuple",
    "require_real",
    "require_samples",
]


def require_int(name: str, value: Any, minimum: int) -> None:
    """Raise unless ``value`` is an ``int`` (not a bool) that is at least ``minimum``."""
    if not is_int(value):
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
        if not is_int(item) or item < minimum:
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
    if not is_real(value):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    ok = math.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low)
    ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def require_samples(num_samples: int, name: str, minimum: int = 1) -> None:
    """Raise unless there are at least ``minimum`` samples: a calibration on no data would
    return a policy (or records) that nothing supports.

    Raises:
        ValueError: Naming the argument and the count.
    """
    if num_samples < minimum:
        raise ValueError(
            f"{name} holds {num_samples} samples; at least {minimum} are needed to calibrate on"
        )


def require_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an ``int`` and not a ``bool`` (``True`` is an ``int`` in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number (int, float, numpy scalar) and not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_real(name: str, value: Any, *, finite: bool = True) -> float:
    """``value`` as a float, if it is a real number (and finite, unless ``finite=False``).

    Raises:
        TypeError: Not a real number (bools and strings included).
        ValueError: NaN, or infinite when ``finite``.
    """
    allowed = "a finite number" if finite else "a number"
    if not is_real(value):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def require_index(name: str, value: Any, length: int) -> int:
    """``value`` as a position in ``range(-length, length)``, counted from the end if negative.

    Raises:
        TypeError: Not an int (bools included).
        ValueError: Out of range.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not -length <= value < length:
        raise ValueError(f"{name} {value} is out of range for {length} entries")
    return int(value) % length


def require_bool(name: str, value: Any) -> None:
    """Raise unless ``value`` is a ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")


def parse_input_size(
    input_size: Any, channels: int | None = None, name: str = "input_size"
) -> tuple[int, ...]:
    """The one reading of an image-size argument.

    Args:
        input_size: ``S`` (square), ``(H, W)`` or ``(C, H, W)``, with ints >= 1 (a
            ``torch.Size`` counts as a tuple).
        channels: The channel count to fill in for ``S`` and ``(H, W)``; ``None`` returns
            ``(H, W)`` and accepts ``(C, H, W)`` only to drop ``C``.
        name: How the argument is called in error messages.

    Returns:
        ``(C, H, W)`` when ``channels`` is given, else ``(H, W)``.

    Raises:
        TypeError: Not an int or a sequence of ints (bools, floats and strings included).
        ValueError: Other than 2 or 3 values, a value below 1, or a ``C`` that
            differs from ``channels``.
    """
    allowed = "an int S (square images), (H, W) or (C, H, W), with ints >= 1"
    if is_int(input_size):
        size: tuple[Any, ...] = (input_size, input_size)
    elif isinstance(input_size, (tuple, list, torch.Size)):
        size = tuple(input_size)
    else:
        raise TypeError(f"{name} must be {allowed}, got {input_size!r}")
    if not all(is_int(v) for v in size):
        raise TypeError(f"{name} must be {allowed}, got {input_size!r}")
    if len(size) not in (2, 3) or any(v < 1 for v in size):
        raise ValueError(f"{name} must be {allowed}, got {input_size!r}")
    if len(size) == 3 and channels is not None and size[0] != channels:
        raise ValueError(f"{name} {input_size!r} has {size[0]} channels; the model has {channels}")
    height_width = size[-2:]
    return height_width if channels is None else (channels, *height_width)


def _is_number(value: object) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex()
    return is_real(value)


def check_costs(
    costs: Sequence[float] | Tensor, num_exits: int, name: str = "costs"
) -> list[float]:
    """Validates cumulative per-exit costs.

    Args:
        costs: ``costs[k]`` is what one sample pays when it leaves at exit ``k``: MACs from
            :func:`adanet.measure_exit_costs`, seconds from :func:`adanet.measure_exit_latency`,
            or any other cumulative unit. A sequence of numbers or a 1-D tensor.
        num_exits: Number of exits the costs must cover.
        name: How the costs are called in error messages.

    Returns:
        The costs as Python floats.

    Raises:
        TypeError: If ``costs`` is a string or holds something that is not a number.
        ValueError: If there is not one cost per exit, a cost is NaN, infinite or negative, or
            the costs decrease from one exit to the next.
    """
    if isinstance(costs, str | bytes):
        raise TypeError(f"{name} must be a sequence of numbers, got the string {costs!r}")
    if isinstance(costs, Tensor):
        if costs.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one cost per exit), got {tuple(costs.shape)}")
        values = [float(c) for c in costs.tolist()]
    else:
        try:
            items = list(costs)
        except TypeError as exc:
            raise TypeError(f"{name} must be a sequence of numbers, got {costs!r}") from exc
        if any(not _is_number(c) for c in items):
            raise TypeError(f"{name} must hold numbers, got {items!r}")
        try:
            values = [float(c) for c in items]
        except OverflowError:  # an integer beyond float's range
            raise ValueError(f"{name} holds a number beyond float's range") from None
    if len(values) != num_exits:
        raise ValueError(f"{name} has {len(values)} entries but there are {num_exits} exits")
    if any(not math.isfinite(c) or c < 0.0 for c in values):
        raise ValueError(f"{name} must be finite and non-negative, got {values}")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(
            f"{name} must be cumulative (non-decreasing from one exit to the next), got {values}"
        )
    return values


def check_targets(
    targets: object, num_samples: int, num_classes: int | None, name: str = "targets"
) -> Tensor:
    """Validates class-index targets and returns them as an int64 tensor.

    Args:
        targets: ``[N]`` tensor of class indices, of an integer dtype.
        num_samples: The number of samples ``N`` the targets must match.
        num_classes: When given, every target must lie in ``[0, num_classes)``.
        name: How the targets are called in error messages.

    Returns:
        The targets as ``int64``, on their own device.

    Raises:
        TypeError: If ``targets`` is not a tensor, or its dtype is not an integer type (float
            and bool targets are rejected rather than guessed at).
        ValueError: If the shape is not ``[num_samples]`` or a value is out of range.
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(targets)!r}")
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(
            f"{name} must have an integer dtype (class indices), got {targets.dtype}; "
            "convert with .long() if the values are whole class numbers"
        )
    if targets.ndim != 1:
        hint = " (use targets.view(-1) for a [N, 1] tensor)" if targets.ndim == 2 else ""
        raise ValueError(
            f"{name} must have shape [N] (one class index per sample), got shape "
            f"{tuple(targets.shape)}{hint}"
        )
    if targets.shape[0] != num_samples:
        raise ValueError(
            f"{name} has {targets.shape[0]} samples but the matching logits have {num_samples}"
        )
    if num_classes is not None and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"{name} holds class index {bad}, outside [0, {num_classes}) for "
                f"{num_classes}-class logits"
            )
    return targets.long()
