"""Evaluation over a data loader: anytime accuracy per exit, and a policy run for real."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._device import module_device
from .costs import Convention
from .inference import early_exit, exit_costs_for
from .policy import EarlyExitPolicy
from .protocol import EarlyExitNetwork

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "PolicyEvaluation",
    "anytime_records",
    "evaluate_anytime",
    "evaluate_policy",
    "topk_accuracy",
    "topk_correct",
]

Batch = Sequence[Tensor]


@dataclass(frozen=True)
class AnytimeRecord:
    """Accuracy of one exit when every sample is classified there.

    Attributes:
        exit: The exit's index.
        macs: Cumulative cost of the exit per image.
        top1: Top-1 accuracy, a fraction in [0, 1].
        top5: Top-5 accuracy (top-k with k = min(5, classes)), a fraction in [0, 1].
    """

    exit: int
    macs: float
    top1: float
    top5: float


@dataclass(frozen=True)
class AnytimeEvaluation:
    """The result of :func:`evaluate_anytime`.

    Attributes:
        records: One :class:`AnytimeRecord` per exit.
        logits: ``[exits, N, classes]`` on the CPU, for calibrating policies
            (:func:`adanet.budgeted_sweep`) without another pass.
        targets: ``[N]`` on the CPU.
    """

    records: list[AnytimeRecord]
    logits: Tensor
    targets: Tensor


@dataclass(frozen=True)
class PolicyEvaluation:
    """The result of running a policy for real with :func:`evaluate_policy`.

    Attributes:
        accuracy: Top-1 accuracy, a fraction in [0, 1].
        mean_cost: Mean cumulative cost paid per image.
        seconds_per_image: Wall time of the early-exit forward per image (data loading
            excluded).
        exit_fractions: Share of the images that left at each exit.
        num_samples: Images evaluated.
    """

    accuracy: float
    mean_cost: float
    seconds_per_image: float
    exit_fractions: tuple[float, ...]
    num_samples: int


def topk_correct(logits: Tensor, targets: Tensor, k: int) -> Tensor:
    """How many rows have their target among the ``k`` largest logits (k capped at the
    number of classes), as a 0-d tensor on the logits' device (no synchronisation)."""
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
    return (top == targets.unsqueeze(-1)).any(dim=-1).sum()


def topk_accuracy(logits: Tensor, targets: Tensor, k: int) -> float:
    """Share of rows whose target is among the ``k`` largest logits (k capped at classes)."""
    return float(topk_correct(logits, targets, k)) / max(1, logits.shape[0])


def anytime_records(
    logits: Tensor | Sequence[Tensor], targets: Tensor, costs: Sequence[float]
) -> list[AnytimeRecord]:
    """Per-exit top-1/top-5 from all-exit logits ``[exits, N, classes]``."""
    stacked = torch.stack(list(logits)) if not isinstance(logits, Tensor) else logits
    if stacked.dim() != 3:
        raise ValueError(f"expected logits shaped [exits, N, classes], got {tuple(stacked.shape)}")
    if len(costs) != stacked.shape[0]:
        raise ValueError(f"{len(costs)} costs for {stacked.shape[0]} exits")
    if targets.shape != (stacked.shape[1],):
        raise ValueError(
            f"targets shaped {tuple(targets.shape)} do not match {stacked.shape[1]} samples"
        )
    return [
        AnytimeRecord(
            exit=k,
            macs=float(costs[k]),
            top1=topk_accuracy(stacked[k], targets, 1),
            top5=topk_accuracy(stacked[k], targets, 5),
        )
        for k in range(stacked.shape[0])
    ]


def evaluate_anytime(
    model: EarlyExitNetwork,
    loader: Iterable[Batch],
    *,
    costs: Sequence[float] | None = None,
    convention: Convention = "actual",
) -> AnytimeEvaluation:
    """Every exit's accuracy over ``loader`` in one pass, in eval mode.

    Args:
        model: The network (its training flag is restored afterwards).
        loader: Yields ``(images, targets)`` batches.
        costs: Per-exit cumulative costs; measured for the loader's image size if omitted.
        convention: Cost convention used when measuring.

    Returns:
        The per-exit records and the collected logits and targets.
    """
    device = module_device(model)
    was_training = model.training
    model.eval()
    all_logits: list[Tensor] = []
    all_targets: list[Tensor] = []
    image_shape: tuple[int, ...] | None = None
    try:
        with torch.no_grad():
            for images, targets in loader:
                images = images.to(device, non_blocking=True)
                image_shape = tuple(images.shape[1:])
                outputs = model(images)
                all_logits.append(torch.stack([o.float() for o in outputs]).cpu())
                all_targets.append(targets.cpu())
    finally:
        model.train(was_training)
    if image_shape is None:
        raise ValueError("the loader yielded no batches")
    if costs is None:
        costs = exit_costs_for(model, image_shape, convention).tolist()
    logits = torch.cat(all_logits, dim=1)
    targets_all = torch.cat(all_targets)
    return AnytimeEvaluation(anytime_records(logits, targets_all, costs), logits, targets_all)


def evaluate_policy(
    model: EarlyExitNetwork,
    loader: Iterable[Batch],
    policy: EarlyExitPolicy,
    *,
    costs: Sequence[float] | None = None,
    convention: Convention = "actual",
) -> PolicyEvaluation:
    """Run ``policy`` for real (:func:`adanet.early_exit`) over ``loader``.

    Args:
        model: The network, switched to eval mode for the run and restored afterwards.
        loader: Yields ``(images, targets)`` batches.
        policy: The early-exit policy.
        costs: Per-exit cumulative costs; measured if omitted.
        convention: Cost convention used when measuring.

    Returns:
        Accuracy, mean cost, wall time per image and the share leaving at each exit.
    """
    device = module_device(model)
    was_training = model.training
    model.eval()
    correct = 0
    total = 0
    cost_sum = 0.0
    seconds = 0.0
    counts = torch.zeros(model.num_exits, dtype=torch.long)
    try:
        for images, targets in loader:
            images = images.to(device, non_blocking=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            result = early_exit(model, images, policy, costs=costs, convention=convention)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - start
            predictions = result.logits.argmax(dim=-1).cpu()
            correct += int((predictions == targets.cpu()).sum())
            total += int(targets.shape[0])
            cost_sum += float(result.cost.sum())
            counts += torch.bincount(result.exit_index.cpu(), minlength=model.num_exits)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("the loader yielded no samples")
    return PolicyEvaluation(
        accuracy=correct / total,
        mean_cost=cost_sum / total,
        seconds_per_image=seconds / total,
        exit_fractions=tuple((counts.double() / total).tolist()),
        num_samples=total,
    )
