"""Where a module lives."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["module_device"]


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without any)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
