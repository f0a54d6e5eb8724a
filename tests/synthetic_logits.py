"""Synthetic all-exit logits shared by the policy and calibration tests."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CALIBRATABLE", "make_logits"]

#: The confidence measures that greedy calibration supports.
CALIBRATABLE = ("max_prob", "entropy", "margin")


def make_logits(
    num_exits: int = 5,
    num_samples: int = 2000,
    num_classes: int = 10,
    seed: int = 0,
    quantum: float | None = None,
) -> Tensor:
    """Random logits whose later exits are more confident; optionally quantised to force ties."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 3.0, num_exits).view(num_exits, 1, 1)
    logits = torch.randn(num_exits, num_samples, num_classes, generator=gen) * scale
    if quantum is not None:
        logits = (logits / quantum).round() * quantum
    return logits
