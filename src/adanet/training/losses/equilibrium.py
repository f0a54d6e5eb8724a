"""IMTA's Gradient Equilibrium: rescaling the gradients that meet at each exit's branching
point (Li et al., "Improved Techniques for Training Adaptive Deep Networks", ICCV 2019)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from adanet._validation import require_fraction, require_int

__all__ = ["GradientRescale", "equilibrium_exit", "equilibrium_scale", "gradient_rescale"]

_T = TypeVar("_T")


class GradientRescale(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` backwards."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        # A view (not ``x`` itself) so autograd records this node; no copy is made.
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * ctx.scale, None


def gradient_rescale(x: Tensor, scale: float) -> Tensor:
    """Returns ``x`` unchanged but scales the gradient flowing back through it by ``scale``.

    Args:
        x: Any tensor.
        scale: Finite factor applied to the gradient (may be 0, which blocks the gradient).

    Returns:
        A view of ``x`` with the same values.

    Raises:
        TypeError: If ``scale`` is not a number.
        ValueError: If ``scale`` is not finite.
    """
    # An unbounded interval: the check is "a finite int or float".
    require_fraction(
        "scale", scale, low=-math.inf, high=math.inf, low_inclusive=False, high_inclusive=False
    )
    out: Tensor = GradientRescale.apply(x, float(scale))
    return out


def equilibrium_scale(exit_index: int, num_exits: int) -> tuple[float, float]:
    """IMTA's Gradient Equilibrium factors at exit ``exit_index`` (0-based) of ``num_exits``.

    Returns ``(head_scale, trunk_scale) = (1 / (num_exits - i), num_exits - i - 1)``. These are
    the two ``gradient_rescale`` factors of the official IMTA code (``models/msdnet_ge.py``)::

        x[-1] = gradient_rescale(x[-1], 1.0 / (nBlocks - i))   # before classifier i
        pred, _ = classifier[i](x)
        x[-1] = gradient_rescale(x[-1], nBlocks - i - 1)       # before block i + 1

    Applied in that order, the gradient reaching block ``i``'s output is
    ``(g_head + (n - i - 1) * g_trunk) / (n - i)``: the exit's own gradient is scaled by
    ``1 / (n - i)`` and the gradient from the ``n - i - 1`` later exits by
    ``(n - i - 1) / (n - i)``. When every exit contributes a comparable gradient this is an
    average rather than a sum, so early blocks no longer receive gradients that grow with the
    number of later exits. At the final exit the trunk factor is 0 (nothing follows it).

    Args:
        exit_index: 0-based index of the exit.
        num_exits: Total number of exits.

    Returns:
        ``(head_scale, trunk_scale)``.

    Raises:
        TypeError: If either argument is not an int.
        ValueError: If ``num_exits < 1`` or ``exit_index`` is not in ``[0, num_exits)``.
    """
    require_int("num_exits", num_exits, 1)
    require_int("exit_index", exit_index, 0)
    if exit_index >= num_exits:
        raise ValueError(f"exit_index must be in [0, {num_exits}), got {exit_index}")
    remaining = num_exits - exit_index
    return 1.0 / remaining, float(remaining - 1)


def equilibrium_exit(
    features: Tensor, head: Callable[[Tensor], _T], exit_index: int, num_exits: int
) -> tuple[_T, Tensor]:
    """Runs an exit head with IMTA's Gradient Equilibrium around its branching point.

    A network applies Gradient Equilibrium by routing the tensor that feeds exit ``i``'s
    classifier *and* the next block through this helper::

        logits_i, h = equilibrium_exit(h, classifier[i], i, num_exits)
        h = block[i + 1](h)

    instead of ``logits_i = classifier[i](h)``. The forward values are unchanged; only the
    gradients are rescaled as in :func:`equilibrium_scale`. In IMTA's MSDNet the rescaled tensor is
    the coarsest-scale feature map (``x[-1]``), the only one the classifier reads; a multi-scale
    network should rescale exactly the tensor(s) shared between the head and the trunk.

    Args:
        features: Tensor consumed by both the exit head and the following block.
        head: The exit classifier (any callable taking the features).
        exit_index: 0-based index of the exit.
        num_exits: Total number of exits.

    Returns:
        ``(head(features'), features'')`` where both are value-identical to the unscaled
        computation; pass the second element on to the next block.
    """
    head_scale, trunk_scale = equilibrium_scale(exit_index, num_exits)
    scaled = gradient_rescale(features, head_scale)
    out = head(scaled)
    return out, gradient_rescale(scaled, trunk_scale)
