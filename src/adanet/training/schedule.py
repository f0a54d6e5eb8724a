"""The learning-rate schedules of the original RANet/MSDNet ``main.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from adanet._validation import require_choice, require_int

__all__ = ["LRSchedule", "LRType", "learning_rate_at", "set_learning_rate"]

LRType = Literal["multistep", "cosine"]
"""Schedules of the original ``adjust_learning_rate``."""


def learning_rate_at(
    epoch: int,
    batch_index: int,
    batches_per_epoch: int,
    base_lr: float,
    epochs: int,
    lr_type: LRType = "multistep",
    decay_rate: float = 0.1,
    *,
    step_every: int | None = None,
) -> float:
    """The learning rate of the original ``adjust_learning_rate`` at one iteration.

    * ``"cosine"``: ``0.5 * base_lr * (1 + cos(pi * t / T))`` with
      ``t = (epoch % epochs) * batches_per_epoch + batch_index`` and
      ``T = epochs * batches_per_epoch`` (changes every iteration).
    * ``"multistep"`` (CIFAR rule, the default): ``base_lr`` until half the epochs, then
      ``base_lr * decay_rate``, and ``base_lr * decay_rate**2`` from three quarters on.
    * ``"multistep"`` with ``step_every=30`` (the original's ImageNet rule):
      ``base_lr * decay_rate ** (epoch // step_every)``.

    The original hard-codes ``decay_rate=0.1`` whatever its ``--decay-rate`` says; the default
    here is the same.

    Args:
        epoch: 0-based epoch.
        batch_index: 0-based iteration within the epoch.
        batches_per_epoch: Iterations per epoch.
        base_lr: The initial learning rate (``--lr``).
        epochs: Total epochs of the run (``--epochs``).
        lr_type: ``"multistep"`` or ``"cosine"``.
        decay_rate: Factor of each multistep decay.
        step_every: Epochs between decays for the step-every-N rule; ``None`` for the CIFAR
            rule.

    Returns:
        The learning rate.

    Raises:
        TypeError, ValueError: On an unknown ``lr_type``, or ``epochs``,
            ``batches_per_epoch`` or ``step_every`` that is not an int >= 1.
    """
    require_int("epochs", epochs, 1)
    require_int("batches_per_epoch", batches_per_epoch, 1)
    require_choice("lr_type", lr_type, ("multistep", "cosine"))
    if lr_type == "cosine":
        total = epochs * batches_per_epoch
        current = (epoch % epochs) * batches_per_epoch + batch_index
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * current / total))
    # "multistep"
    if step_every is not None:
        require_int("step_every", step_every, 1)
        return base_lr * decay_rate ** (epoch // step_every)
    if epoch >= epochs * 0.75:
        return base_lr * decay_rate**2
    if epoch >= epochs * 0.5:
        return base_lr * decay_rate
    return base_lr


@dataclass(frozen=True)
class LRSchedule:
    """:func:`learning_rate_at` with the run's constants bound; call it with
    ``(epoch, batch_index, batches_per_epoch)``.

    Attributes:
        base_lr: Initial learning rate.
        epochs: Total epochs.
        lr_type: ``"multistep"`` or ``"cosine"``.
        decay_rate: Factor of each multistep decay.
        step_every: Epochs between decays (ImageNet rule), or ``None`` (CIFAR rule).
    """

    base_lr: float
    epochs: int
    lr_type: LRType = "multistep"
    decay_rate: float = 0.1
    step_every: int | None = None

    def __call__(self, epoch: int, batch_index: int, batches_per_epoch: int) -> float:
        """The learning rate at this iteration."""
        return learning_rate_at(
            epoch,
            batch_index,
            batches_per_epoch,
            self.base_lr,
            self.epochs,
            self.lr_type,
            self.decay_rate,
            step_every=self.step_every,
        )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` in every parameter group, as the original does each iteration."""
    for group in optimizer.param_groups:
        group["lr"] = lr
