"""A tiny RANet and digits loaders for the training tests: small enough that an epoch takes a
fraction of a second, with the seeded pieces a reproducible run needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from adanet import RANet
from adanet.training import FitOptions
from adanet.training.losses import MultiExitLoss
from small_configs import SMALL_RANET

__all__ = ["TINY", "NaNAt", "loaders", "options", "setup"]

TINY = SMALL_RANET


def loaders(splits: Any, seed: int = 0) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """160 training images in batches of 32 (seeded shuffling) and 64 validation images."""
    train = Subset(splits.train, range(160))
    val = Subset(splits.val, range(64))
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=32, shuffle=True, generator=generator),
        DataLoader(val, batch_size=64),
    )


def setup(splits: Any, seed: int) -> tuple[RANet, torch.optim.Optimizer, Any, Any]:
    """A seeded tiny RANet, its SGD optimizer and the two loaders."""
    torch.manual_seed(seed)
    model = RANet(TINY)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    train, val = loaders(splits, seed)
    return model, optimizer, train, val


def options(save_dir: Path | None, **changes: Any) -> FitOptions:
    """``FitOptions`` without a progress bar."""
    return FitOptions(save_dir=save_dir, progress=False, **changes)


class NaNAt:
    """Cross-entropy that turns NaN at one call."""

    def __init__(self, call: int) -> None:
        self.call = call
        self.calls = 0
        self.inner = MultiExitLoss("ce")

    def __call__(self, logits: list[Tensor], target: Tensor) -> Tensor:
        loss = self.inner(logits, target)
        self.calls += 1
        return loss * float("nan") if self.calls == self.call else loss
