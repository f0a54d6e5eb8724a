"""Per-exit loss weights: named schemes and the validation of user-supplied weight lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from adanet._validation import require_int

__all__ = ["WeightScheme", "exit_weights", "resolve_weights"]

WeightScheme = Literal["uniform", "linear"]
"""Names accepted by :func:`exit_weights`."""

_WEIGHT_SCHEMES: tuple[str, ...] = get_args(WeightScheme)


def exit_weights(num_exits: int, scheme: WeightScheme = "uniform") -> list[float]:
    """Returns the per-exit loss weights of a named scheme.

    * ``"uniform"``: ``w_k = 1.0`` for every exit, so the weighted sum equals the plain sum used
      by the original RANet/MSDNet code.
    * ``"linear"``: ``w_k = (k + 1) / num_exits`` for ``k = 0 .. num_exits - 1``, i.e. weights grow
      linearly from ``1 / num_exits`` at the first exit to exactly ``1.0`` at the final exit
      (for 4 exits: ``[0.25, 0.5, 0.75, 1.0]``).

    Args:
        num_exits: Number of exits (at least 1).
        scheme: Name of the weighting scheme.

    Returns:
        A list of ``num_exits`` non-negative floats, ordered like the model's exits.

    Raises:
        TypeError: If ``num_exits`` is not an int.
        ValueError: If ``num_exits < 1`` or ``scheme`` is unknown.
    """
    require_int("num_exits", num_exits, 1)
    if scheme == "uniform":
        return [1.0] * num_exits
    if scheme == "linear":
        return [(k + 1) / num_exits for k in range(num_exits)]
    raise ValueError(f"unknown weight scheme {scheme!r}; expected one of {list(_WEIGHT_SCHEMES)}")


def resolve_weights(weights: Sequence[float] | WeightScheme | None, num_exits: int) -> list[float]:
    """Turns a weight specification into a validated list of per-exit weights.

    Args:
        weights: ``None`` (uniform weights of 1.0), the name of a scheme accepted by
            :func:`exit_weights`, or an explicit sequence of one weight per exit.
        num_exits: Number of exits the weights must cover.

    Returns:
        A list of ``num_exits`` finite, non-negative floats.

    Raises:
        ValueError: If the sequence length differs from ``num_exits``, or any weight is negative,
            NaN or infinite, or all weights are zero, or the scheme name is unknown.
    """
    if weights is None:
        return exit_weights(num_exits, "uniform")
    if isinstance(weights, str):
        return exit_weights(num_exits, weights)
    values = [float(w) for w in weights]
    if len(values) != num_exits:
        raise ValueError(
            f"got {len(values)} exit weights for {num_exits} exits; "
            "pass exactly one weight per exit"
        )
    for k, w in enumerate(values):
        if not math.isfinite(w) or w < 0.0:
            raise ValueError(f"exit weight {k} must be finite and non-negative, got {w!r}")
    # An all-zero weighting silently produces a loss with no gradient; that is never intended.
    if not any(w > 0.0 for w in values):
        raise ValueError("at least one exit weight must be positive")
    return values
