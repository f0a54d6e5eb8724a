"""One check for per-exit costs (MACs, seconds, anything cumulative), used wherever costs are
accepted, so a NaN or negative cost can never turn into a NaN or negative mean cost."""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence

from torch import Tensor

__all__ = ["check_costs"]


def _is_number(value: object) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
        values = [float(c) for c in items]
    if len(values) != num_exits:
        raise ValueError(f"{name} has {len(values)} entries but there are {num_exits} exits")
    if any(not math.isfinite(c) or c < 0.0 for c in values):
        raise ValueError(f"{name} must be finite and non-negative, got {values}")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(
            f"{name} must be cumulative (non-decreasing from one exit to the next), got {values}"
        )
    return values
