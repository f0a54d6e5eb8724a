"""Tests for adanet.budgeted against a plain-loop transcription of the reference protocol."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
from torch import Tensor

from adanet.budgeted import (
    DEFAULT_PS,
    BudgetRecord,
    budgeted_sweep,
    warn_if_same_data,
)
from adanet.policy import EarlyExitPolicy, geometric_exit_fractions
from reference_impl.original_dynamic_eval import find_threshold, reference_fractions, with_threshold


def oracle_sweep(
    val_logits: Tensor, test_logits: Tensor, test_targets: Tensor, flops: list[float]
) -> list[tuple[float, float, list[int]]]:
    """The reference dynamic_evaluate loop over p = 1/20 .. 39/20."""
    val_probs = torch.softmax(val_logits.float(), dim=2)
    test_probs = torch.softmax(test_logits.float(), dim=2)
    out = []
    for p in range(1, 40):
        fractions = reference_fractions(p * 1.0 / 20, val_logits.shape[0])
        thresholds = find_threshold(val_probs, fractions)
        out.append(with_threshold(test_probs, test_targets, flops, thresholds))
    return out


def make_data(
    num_exits: int, num_samples: int, num_classes: int, seed: int, quantum: float | None = None
) -> tuple[Tensor, Tensor]:
    """Logits that get more confident and more often right at later exits, like a real net."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, num_classes, (num_samples,), generator=gen)
    signal = torch.linspace(0.3, 3.0, num_exits).view(num_exits, 1, 1)
    onehot = torch.nn.functional.one_hot(targets, num_classes).float().unsqueeze(0)
    logits = torch.randn(num_exits, num_samples, num_classes, generator=gen) * 1.5
    logits = logits + signal * onehot
    if quantum is not None:
        logits = (logits / quantum).round() * quantum
    return logits, targets


COSTS_8 = [15e6, 31e6, 44e6, 60e6, 73e6, 89e6, 101e6, 118e6]


# --------------------------------------------------------------------------- agreement


def check_against_oracle(
    records: list[BudgetRecord], oracle: list[tuple[float, float, list[int]]], num_test: int
) -> None:
    assert len(records) == len(oracle) == 39
    for record, (acc_pct, exp_flops, counts) in zip(records, oracle, strict=True):
        assert abs(100.0 * record.accuracy - acc_pct) <= 0.05, record.p
        assert record.mean_cost == pytest.approx(exp_flops, rel=1e-3), record.p
        assert record.exit_fractions == pytest.approx([c / num_test for c in counts], abs=0.0)


def test_sweep_reproduces_reference_5000_plus_5000_eight_exits() -> None:
    val_logits, _ = make_data(8, 5000, 10, seed=1)
    test_logits, test_targets = make_data(8, 5000, 10, seed=2)
    val_targets = torch.zeros(5000, dtype=torch.long)
    records = budgeted_sweep(val_logits, val_targets, test_logits, test_targets, COSTS_8)
    oracle = oracle_sweep(val_logits, test_logits, test_targets, COSTS_8)
    check_against_oracle(records, oracle, 5000)
    # Exact agreement is expected (same greedy rule, same float32 confidences).
    for record, (acc_pct, _, counts) in zip(records, oracle, strict=True):
        assert round(record.accuracy * 5000) == round(acc_pct * 50)
        assert [round(f * 5000) for f in record.exit_fractions] == counts
    # The sweep must span the budget range, or agreement would be cheap.
    assert records[0].mean_cost < 0.3 * COSTS_8[-1] < 0.8 * COSTS_8[-1] < records[-1].mean_cost


@pytest.mark.parametrize(("quantum", "num_classes"), [(0.5, 4), (1.0, 3), (0.25, 10)])
def test_sweep_reproduces_reference_with_ties(quantum: float, num_classes: int) -> None:
    val_logits, val_targets = make_data(6, 1500, num_classes, seed=3, quantum=quantum)
    test_logits, test_targets = make_data(6, 1500, num_classes, seed=4, quantum=quantum)
    costs = [1e6, 2e6, 3.5e6, 5e6, 7e6, 9e6]
    records = budgeted_sweep(val_logits, val_targets, test_logits, test_targets, costs)
    oracle = oracle_sweep(val_logits, test_logits, test_targets, costs)
    check_against_oracle(records, oracle, 1500)


def test_sweep_thresholds_equal_oracle_thresholds() -> None:
    val_logits, val_targets = make_data(5, 2000, 5, seed=5, quantum=0.5)
    test_logits, test_targets = make_data(5, 2000, 5, seed=6)
    records = budgeted_sweep(
        val_logits, val_targets, test_logits, test_targets, [1, 2, 3, 4, 5], ps=[0.4, 1.0, 1.6]
    )
    val_probs = torch.softmax(val_logits, dim=2)
    for record in records:
        want = find_threshold(val_probs, reference_fractions(record.p, 5))
        got = [
            1e8 if t == math.inf else -1e8 if t == -math.inf else t
            for t in record.policy.thresholds
        ]
        assert got == want
        # Away from float32 rounding edge cases this is calibrate() with the float64 shares.
        fractions = geometric_exit_fractions(record.p, 5)
        assert record.policy == EarlyExitPolicy.calibrate(val_logits, fractions)


def test_record_fields() -> None:
    val_logits, val_targets = make_data(3, 300, 4, seed=7)
    test_logits, test_targets = make_data(3, 200, 4, seed=8)
    records = budgeted_sweep(
        list(val_logits), val_targets, list(test_logits), test_targets, [1.0, 2.0, 4.0]
    )
    assert [r.p for r in records] == list(DEFAULT_PS) == [k / 20 for k in range(1, 40)]
    for r in records:
        assert isinstance(r, BudgetRecord)
        assert isinstance(r.policy, EarlyExitPolicy)
        assert isinstance(r.exit_fractions, tuple) and len(r.exit_fractions) == 3
        assert sum(r.exit_fractions) == pytest.approx(1.0)
        assert 0.0 <= r.accuracy <= 1.0
        assert r.mean_cost == pytest.approx(
            sum(f * c for f, c in zip(r.exit_fractions, [1.0, 2.0, 4.0], strict=True))
        )
        exits = r.policy.simulate(test_logits)
        preds = test_logits.argmax(dim=2).gather(0, exits.unsqueeze(0)).squeeze(0)
        assert r.accuracy == pytest.approx(float((preds == test_targets).float().mean()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].accuracy = 1.0  # type: ignore[misc]


def test_other_measures_run() -> None:
    val_logits, val_targets = make_data(4, 500, 5, seed=9)
    test_logits, test_targets = make_data(4, 500, 5, seed=10)
    for measure in ("entropy", "margin"):
        records = budgeted_sweep(
            val_logits, val_targets, test_logits, test_targets, [1, 2, 3, 4], measure=measure
        )
        assert all(r.policy.measure == measure for r in records)
        assert records[0].mean_cost < records[-1].mean_cost


# --------------------------------------------------------------------------- same-data warning


def test_warns_when_thresholds_tuned_on_test_data() -> None:
    logits, targets = make_data(3, 200, 4, seed=11)
    with pytest.warns(UserWarning, match="tuned on the test data"):
        budgeted_sweep(logits, targets, logits, targets, [1, 2, 3], ps=[1.0])
    with pytest.warns(UserWarning, match="tuned on the test data"):
        budgeted_sweep(logits, targets, logits.clone(), targets, [1, 2, 3], ps=[1.0])
    other, other_targets = make_data(3, 200, 4, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        budgeted_sweep(logits, targets, other, other_targets, [1, 2, 3], ps=[1.0])
        assert warn_if_same_data(logits, other) is False
    with pytest.warns(UserWarning):
        assert warn_if_same_data(list(logits), logits) is True


# --------------------------------------------------------------------------- validation


def test_input_validation() -> None:
    val_logits, val_targets = make_data(3, 100, 4, seed=13)
    test_logits, test_targets = make_data(3, 80, 4, seed=14)
    costs = [1.0, 2.0, 3.0]

    def sweep(**overrides: object) -> object:
        kwargs: dict[str, object] = {
            "val_logits": val_logits,
            "val_targets": val_targets,
            "test_logits": test_logits,
            "test_targets": test_targets,
            "costs": costs,
            "ps": [1.0],
        }
        kwargs.update(overrides)
        return budgeted_sweep(**kwargs)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="test_targets has 79 samples"):
        sweep(test_targets=test_targets[:79])
    with pytest.raises(ValueError, match="val_targets"):
        sweep(val_targets=val_targets[:5])
    with pytest.raises(ValueError, match="1-D"):
        sweep(test_targets=test_targets.view(8, 10))
    with pytest.raises(ValueError, match="costs has 2 entries"):
        sweep(costs=[1.0, 2.0])
    with pytest.raises(ValueError, match="non-decreasing"):
        sweep(costs=[1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        sweep(costs=[-1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="exits"):
        sweep(test_logits=test_logits[:2])
    with pytest.raises(ValueError, match="classes"):
        sweep(test_logits=test_logits[..., :3])
    with pytest.raises(ValueError, match="positive"):
        sweep(ps=[0.5, 0.0])
    with pytest.raises(ValueError, match="max_prob"):
        sweep(measure="patience")
    with pytest.raises(ValueError, match="3 dimensions"):
        sweep(test_logits=test_logits[0])
