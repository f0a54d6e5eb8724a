"""Early exit on a stream that shifts: per-window cost and accuracy, method by method.

Thresholds calibrated once spend what the calibration set made them spend only while the
stream looks like it. :func:`shifted_stream` builds the simplest stream that does not: blocks
of easy and hard images in turn (split by a confidence, e.g. the first exit's);
:func:`evaluate_stream` replays all-exit logits of the stream batch by batch through several
methods side by side (a static policy, an :class:`adanet.calibration.OnlineController`
learning as it goes, a static policy under a hard per-batch budget) and reports each method's
mean cost, accuracy and disagreement with the last exit per window of images.

Everything runs from logits (the policies' ``simulate``), so a whole comparison costs one
forward pass of the stream, and the controller learns exactly as it would behind
:func:`adanet.early_exit` (its ``simulate`` is ``early_exit`` + ``observe``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from adanet._validation import check_costs, check_targets, require_int
from adanet.inference.budget import check_budget, simulate_with_budget
from adanet.policies.protocol import ExitDecider, check_policy, policy_exits, stack_logits

__all__ = [
    "PerBatchBudget",
    "StreamEvaluation",
    "StreamOrder",
    "StreamRun",
    "StreamWindow",
    "evaluate_stream",
    "shifted_stream",
]


@dataclass(frozen=True)
class PerBatchBudget:
    """A policy run with a hard budget on every batch: ``early_exit(..., budget=n * per_image)``
    for a batch of ``n`` images.

    Attributes:
        policy: The policy deciding.
        per_image: Budget per image of the batch, in the units of the costs.
    """

    policy: ExitDecider
    per_image: float


@dataclass(frozen=True)
class StreamOrder:
    """A stream of easy and hard blocks over a pool of images.

    Attributes:
        index: ``[L]`` positions in the pool, in stream order.
        hard: ``[L]`` bool, whether each stream image was drawn from the hard half.
        switches: Stream positions where a new block starts (0 excluded).
    """

    index: Tensor
    hard: Tensor
    switches: tuple[int, ...]


def shifted_stream(
    confidence: Tensor,
    *,
    block_size: int = 1000,
    num_blocks: int = 10,
    start_easy: bool = True,
    seed: int = 0,
) -> StreamOrder:
    """Alternating blocks of easy and hard images: the upper and lower half of ``confidence``.

    Each block draws from its half without replacement; a half that runs out is reshuffled and
    drawn again, so a long stream over a small pool shows some images more than once.

    Args:
        confidence: ``[N]`` score per pool image, larger = easier (e.g. the first exit's
            largest softmax probability); NaN counts as hardest.
        block_size: Images per block, at least 1.
        num_blocks: Blocks, at least 1.
        start_easy: Whether the first block is easy.
        seed: Seed of the shuffles.

    Raises:
        ValueError: Fewer than 2 pool images, or bad counts.
    """
    require_int("block_size", block_size, 1)
    require_int("num_blocks", num_blocks, 1)
    if not isinstance(confidence, Tensor) or confidence.ndim != 1 or confidence.numel() < 2:
        raise ValueError("confidence must be a 1-D tensor of at least 2 scores")
    score = confidence.detach().double().cpu().nan_to_num(nan=-math.inf)
    order = torch.argsort(score, descending=True, stable=True)
    half = order.numel() // 2
    pools = (order[:half], order[half:])  # easy, hard
    generator = torch.Generator().manual_seed(seed)
    queues: list[list[int]] = [[], []]
    picked: list[int] = []
    hard: list[bool] = []
    for block in range(num_blocks):
        which = (block + (0 if start_easy else 1)) % 2
        for _ in range(block_size):
            if not queues[which]:
                pool = pools[which]
                queues[which] = pool[torch.randperm(pool.numel(), generator=generator)].tolist()
            picked.append(queues[which].pop())
            hard.append(which == 1)
    switches = tuple(block * block_size for block in range(1, num_blocks))
    return StreamOrder(torch.tensor(picked), torch.tensor(hard), switches)


@dataclass(frozen=True)
class StreamWindow:
    """One window of a method's run.

    Attributes:
        start: Stream position of its first image.
        size: Images in it.
        mean_cost: Mean cost per image.
        disagreement: Share of images whose prediction differs from the last exit's.
        accuracy: Top-1 (NaN without targets).
        accuracy_drop: The last exit's top-1 on these images minus ``accuracy``.
        settled: False for a window that holds a switch of the stream (or its start).
    """

    start: int
    size: int
    mean_cost: float
    disagreement: float
    accuracy: float
    accuracy_drop: float
    settled: bool


@dataclass(frozen=True)
class StreamRun:
    """One method over the whole stream.

    Attributes:
        exit_index: ``[L]`` the exit of every image.
        cost: ``[L]`` float64 cost of every image.
        batch_cost: Total cost of each batch.
        windows: Consecutive windows of the stream.
    """

    exit_index: Tensor
    cost: Tensor
    batch_cost: list[float]
    windows: list[StreamWindow]
    summary: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEvaluation:
    """:func:`evaluate_stream`'s result: every method's run on the same stream.

    Attributes:
        runs: Method name -> its run, in the order given.
        batch_size: Images per batch.
        window: Images per window.
        switches: Stream positions where blocks change.
        last_exit_accuracy: Top-1 of the last exit over the stream (NaN without targets).
    """

    runs: dict[str, StreamRun]
    batch_size: int
    window: int
    switches: tuple[int, ...]
    last_exit_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: every run's summary and windows (not the per-image tensors)."""
        return {
            "batch_size": self.batch_size,
            "window": self.window,
            "switches": list(self.switches),
            "last_exit_accuracy": self.last_exit_accuracy,
            "runs": {
                name: {
                    "summary": dict(run.summary),
                    "max_batch_cost": max(run.batch_cost, default=0.0),
                    "windows": [vars(w).copy() for w in run.windows],
                }
                for name, run in self.runs.items()
            },
        }


def _run_method(
    method: ExitDecider | PerBatchBudget, stacked: Tensor, costs: list[float], batch_size: int
) -> Tensor:
    pieces = []
    for begin in range(0, stacked.shape[1], batch_size):
        batch = stacked[:, begin : begin + batch_size]
        if isinstance(method, PerBatchBudget):
            budget = batch.shape[1] * method.per_image
            pieces.append(simulate_with_budget(method.policy, batch, costs, budget))
        else:
            pieces.append(policy_exits(method, batch))
    return torch.cat(pieces).cpu()


def _windows(
    cost: Tensor,
    disagree: Tensor,
    right: Tensor | None,
    last_right: Tensor | None,
    window: int,
    switches: Sequence[int],
) -> list[StreamWindow]:
    out = []
    for start in range(0, cost.numel(), window):
        end = min(start + window, cost.numel())
        accuracy = drop = math.nan
        if right is not None and last_right is not None:
            accuracy = float(right[start:end].mean())
            drop = float(last_right[start:end].mean()) - accuracy
        settled = not any(start <= s < end for s in (0, *switches))
        out.append(
            StreamWindow(
                start=start,
                size=end - start,
                mean_cost=float(cost[start:end].mean()),
                disagreement=float(disagree[start:end].mean()),
                accuracy=accuracy,
                accuracy_drop=drop,
                settled=settled,
            )
        )
    return out


def _summary(
    run_cost: Tensor,
    disagree: Tensor,
    right: Tensor | None,
    windows: list[StreamWindow],
    target: float | None,
) -> dict[str, float]:
    summary = {
        "mean_cost": float(run_cost.mean()),
        "disagreement": float(disagree.mean()),
        "accuracy": float(right.mean()) if right is not None else math.nan,
        "max_window_disagreement": max(w.disagreement for w in windows),
        "max_settled_window_disagreement": max(
            (w.disagreement for w in windows if w.settled), default=math.nan
        ),
    }
    if target is not None and target > 0:
        ratios = [w.mean_cost / target for w in windows]
        settled = [w.mean_cost / target for w in windows if w.settled]
        summary.update(
            mean_cost_ratio=summary["mean_cost"] / target,
            min_window_ratio=min(ratios),
            max_window_ratio=max(ratios),
            min_settled_window_ratio=min(settled, default=math.nan),
            max_settled_window_ratio=max(settled, default=math.nan),
        )
    return summary


def evaluate_stream(
    logits: Tensor | Sequence[Tensor],
    costs: Sequence[float] | Tensor,
    methods: Mapping[str, ExitDecider | PerBatchBudget],
    *,
    targets: Tensor | None = None,
    batch_size: int = 32,
    window: int = 500,
    switches: Sequence[int] = (),
    target_cost: float | None = None,
) -> StreamEvaluation:
    """Replays a stream batch by batch through several methods and reports them per window.

    A method is any :class:`adanet.ExitDecider` (its ``simulate`` is called on each batch in
    order: an :class:`~adanet.calibration.OnlineController` learns as it goes, and is left in
    its final state) or a :class:`PerBatchBudget`.

    Args:
        logits: ``[exits, L, classes]`` all-exit logits of the stream, in stream order.
        costs: Cumulative cost of each exit for one image.
        methods: Name -> method.
        targets: ``[L]`` class indices for accuracies; ``None`` reports disagreement only.
        batch_size: Images per batch (the last one may be smaller), at least 1.
        window: Images per reported window, at least 1.
        switches: Stream positions where the stream changes (e.g. ``StreamOrder.switches``);
            windows holding one are marked not settled.
        target_cost: The cost to compare windows with (adds ratio figures to the summaries).

    Raises:
        TypeError, ValueError: On malformed logits, costs, targets or methods.
    """
    stacked = stack_logits(logits)
    num_exits, length = int(stacked.shape[0]), int(stacked.shape[1])
    cost_values = check_costs(costs, num_exits)
    require_int("batch_size", batch_size, 1)
    require_int("window", window, 1)
    if target_cost is not None:
        target_cost = check_budget(target_cost)
    labels = None if targets is None else check_targets(targets, length, int(stacked.shape[2]))
    table = torch.tensor(cost_values, dtype=torch.float64)
    last_pred = stacked[-1].argmax(dim=1).cpu()
    last_right = None if labels is None else (last_pred == labels.cpu()).double()
    runs: dict[str, StreamRun] = {}
    for name, method in methods.items():
        if not isinstance(method, PerBatchBudget):
            check_policy(method, f"methods[{name!r}]")
        exits = _run_method(method, stacked, cost_values, batch_size)
        pred = stacked[exits.to(stacked.device), torch.arange(length, device=stacked.device)]
        pred = pred.argmax(dim=1).cpu()
        disagree = (pred != last_pred).double()
        right = None if labels is None else (pred == labels.cpu()).double()
        cost = table[exits]
        windows = _windows(cost, disagree, right, last_right, window, switches)
        runs[name] = StreamRun(
            exit_index=exits,
            cost=cost,
            batch_cost=[
                float(cost[i : i + batch_size].sum()) for i in range(0, length, batch_size)
            ],
            windows=windows,
            summary=_summary(cost, disagree, right, windows, target_cost),
        )
    last_accuracy = math.nan if last_right is None else float(last_right.mean())
    return StreamEvaluation(runs, batch_size, window, tuple(switches), last_accuracy)
