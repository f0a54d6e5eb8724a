"""One check for class-index targets, shared by every function that scores predictions.

Accuracy is ``(prediction == target).mean()``; a target tensor of the wrong shape broadcasts
(``[N, 1]`` against ``[N]`` gives an ``[N, N]`` comparison and an "accuracy" above 1), and
float, bool or out-of-range targets are silently never (or wrongly) matched. Every scoring
function in adanet therefore passes its targets through :func:`check_targets` first.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_targets"]


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
