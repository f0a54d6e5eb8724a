"""adanet.compat.budgeted_protocol: the original budgeted protocol's float32 arithmetic, equal
to the budgeted_case data the original code produced (``cases/budgeted/visible.pt``, see
../shared/reference/README.md)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adanet.calibration.budgeted import DEFAULT_PS
from adanet.compat.budgeted_protocol import (
    REFERENCE_NEVER,
    reference_expected_cost,
    reference_sweep_from_probabilities,
)

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics


def test_reference_arithmetic_equals_the_original_for_all_39_points(
    budgeted_case: dict[str, Any],
) -> None:
    (val_probs, val_targets), (test_probs, test_targets) = (
        budgeted_case["val"],
        budgeted_case["test"],
    )
    points = reference_sweep_from_probabilities(
        val_probs, val_targets, test_probs, test_targets, budgeted_case["flops"]
    )
    assert [p.p for p in points] == [r["p"] for r in budgeted_case["results"]] == list(DEFAULT_PS)
    for point, want in zip(points, budgeted_case["results"], strict=True):
        assert point.thresholds == want["thresholds"], point.p
        assert point.val_accuracy_pct == want["val_accuracy_pct"], point.p
        assert point.test_accuracy_pct == want["test_accuracy_pct"], point.p
        assert point.expected_flops == want["expected_flops"], point.p
    # The sweep must span the budget range, or agreement would be cheap.
    assert points[0].expected_flops < 0.3 * budgeted_case["flops"][-1] < points[-1].expected_flops


def test_expected_cost_is_accumulated_in_float32() -> None:
    assert reference_expected_cost([1, 1], [1.0, 3.0]) == 2.0
    # In float64 this is 1e8 + 2.5; float32 keeps 8 units of spacing near 1e8 and loses it.
    assert reference_expected_cost([1, 3], [1e8 + 1, 1e8 + 3]) == 1e8
    with pytest.raises(ValueError):
        reference_expected_cost([1, 1], [1.0])


def _probabilities(num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three exits' softmax outputs over four classes, more confident at later exits."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 4, (num_samples,), generator=gen)
    signal = torch.tensor([0.5, 1.5, 3.0]).view(3, 1, 1)
    logits = torch.randn(3, num_samples, 4, generator=gen)
    logits = logits + signal * torch.nn.functional.one_hot(targets, 4).float()
    return logits.softmax(dim=2), targets


def test_each_point_is_consistent_with_its_own_counts() -> None:
    val_probs, val_targets = _probabilities(60, 0)
    test_probs, test_targets = _probabilities(40, 1)
    costs = [1.0, 2.0, 4.0]
    points = reference_sweep_from_probabilities(
        val_probs, val_targets, test_probs, test_targets, costs, ps=(0.5, 1.0, 2.0)
    )
    assert [point.p for point in points] == [0.5, 1.0, 2.0]
    for point in points:
        assert sum(point.exit_counts) == 40
        # The last exit takes everybody left: written as the reference's -1e8.
        assert point.thresholds[-1] == -REFERENCE_NEVER
        assert point.expected_flops == reference_expected_cost(point.exit_counts, costs)
        assert 0.0 <= point.test_accuracy_pct <= 100.0
        assert 0.0 <= point.val_accuracy_pct <= 100.0
    # A larger p sends more samples on to later, dearer exits.
    assert points[0].expected_flops < points[-1].expected_flops


def test_bad_targets_and_costs_are_refused() -> None:
    probs, targets = _probabilities(10, 0)
    with pytest.raises(ValueError, match="val_targets"):
        reference_sweep_from_probabilities(probs, targets[:5], probs, targets, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="costs"):
        reference_sweep_from_probabilities(probs, targets, probs, targets, [1.0, 2.0])
