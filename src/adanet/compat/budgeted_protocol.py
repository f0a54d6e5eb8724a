"""The arithmetic of the original budgeted-batch protocol, for bit-identical numbers.

The RANet / MSDNet reference (``dynamic_evaluate``) does three things in float32 that adanet
otherwise does in float64: it builds the geometric shares ``exp(log(p) * [1..n])`` normalised
in float32, rounds ``floor(n * share)`` with a float32 share, and accumulates the expected cost
``sum_k (count_k / n) * cost_k`` in float32. It also works on stored softmax probabilities,
not logits. This module repeats that arithmetic so adanet can reproduce its published sweeps
to the last bit. The float32 counts themselves
(:func:`adanet.calibration.budgeted.reference_exit_counts`) are what
:func:`adanet.budgeted_sweep` uses, so they live beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adanet._validation import check_costs, check_targets
from adanet.calibration.budgeted import DEFAULT_PS, reference_exit_counts
from adanet.calibration.shares import greedy_thresholds
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "REFERENCE_NEVER",
    "ReferencePoint",
    "reference_expected_cost",
    "reference_sweep_from_probabilities",
]

#: The reference writes ``1e8`` for "nobody leaves" and ``-1e8`` for "everybody leaves".
REFERENCE_NEVER: float = 1e8


def reference_expected_cost(exit_counts: Sequence[int], costs: Sequence[float]) -> float:
    """``sum_k (count_k / n) * cost_k`` accumulated in float32, as the reference does."""
    counts = torch.tensor([float(c) for c in exit_counts], dtype=torch.float32)
    num_samples = float(counts.sum())
    total = torch.zeros((), dtype=torch.float32)
    for count, cost in zip(counts, costs, strict=True):
        total = total + (count / num_samples) * float(cost)
    return float(total)


@dataclass(frozen=True)
class ReferencePoint:
    """One point of the reference sweep, in the reference's own units.

    Attributes:
        p: The geometric ratio.
        val_accuracy_pct: Accuracy on the calibration data, in percent.
        test_accuracy_pct: Accuracy on the test data, in percent.
        expected_flops: Mean cost per test sample (float32 accumulation).
        thresholds: Per-exit thresholds with ``inf`` written as ``1e8`` and ``-inf`` as ``-1e8``.
        exit_counts: Test samples that left at each exit.
    """

    p: float
    val_accuracy_pct: float
    test_accuracy_pct: float
    expected_flops: float
    thresholds: list[float]
    exit_counts: list[int]


def _reference_value(t: float) -> float:
    if math.isinf(t):
        return math.copysign(REFERENCE_NEVER, t)
    return t


def _correct_count(probs: Tensor, targets: Tensor, exits: Tensor) -> int:
    predictions = probs.argmax(dim=2).gather(0, exits.unsqueeze(0)).squeeze(0)
    return int((predictions == targets).sum())


def reference_sweep_from_probabilities(
    val_probs: Tensor,
    val_targets: Tensor,
    test_probs: Tensor,
    test_targets: Tensor,
    costs: Sequence[float],
    ps: Sequence[float] = DEFAULT_PS,
) -> list[ReferencePoint]:
    """The reference budgeted sweep on stored softmax probabilities, bit for bit.

    Thresholds are the greedy ones (:func:`adanet.calibration.shares.greedy_thresholds`) on the
    maximum probability of the validation samples with :func:`reference_exit_counts`; a sample
    leaves at its first exit whose maximum probability reaches the threshold.

    Args:
        val_probs: ``[exits, N, classes]`` softmax probabilities to calibrate on.
        val_targets: ``[N]`` class indices.
        test_probs: ``[exits, M, classes]`` probabilities to score.
        test_targets: ``[M]`` class indices.
        costs: Cumulative cost per exit.
        ps: Ratios of the geometric shares.

    Returns:
        One :class:`ReferencePoint` per ``p``.
    """
    num_exits, num_val, num_classes = val_probs.shape
    val_t = check_targets(val_targets, num_val, num_classes, "val_targets")
    test_t = check_targets(test_targets, test_probs.shape[1], num_classes, "test_targets")
    cost_values = check_costs(costs, num_exits)
    val_conf, test_conf = val_probs.amax(dim=2), test_probs.amax(dim=2)
    points = []
    for p in ps:
        thresholds = greedy_thresholds(val_conf, reference_exit_counts(p, num_exits, num_val))
        policy = EarlyExitPolicy(thresholds)
        val_exits = policy.exits_from_confidence(val_conf)
        test_exits = policy.exits_from_confidence(test_conf)
        counts = torch.bincount(test_exits, minlength=num_exits).tolist()
        points.append(
            ReferencePoint(
                p=p,
                val_accuracy_pct=_correct_count(val_probs, val_t, val_exits) * 100.0 / num_val,
                test_accuracy_pct=_correct_count(test_probs, test_t, test_exits)
                * 100.0
                / test_probs.shape[1],
                expected_flops=reference_expected_cost(counts, cost_values),
                thresholds=[_reference_value(t) for t in thresholds],
                exit_counts=counts,
            )
        )
    return points
