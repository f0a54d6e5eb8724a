"""Tests for adanet.calibration.budgeted against the budgeted_case data the original code produced
(``cases/budgeted/visible.pt``, see ../shared/reference/README.md); the original's float32
arithmetic itself is tested in tests/compat/test_budgeted_protocol.py."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor

from adanet.calibration.budgeted import (
    DEFAULT_PS,
    BudgetRecord,
    budgeted_sweep,
    reference_exit_counts,
    warn_if_same_data,
)
from adanet.calibration.shares import calibrate_shares, geometric_exit_fractions
from adanet.policies.threshold import EarlyExitPolicy

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics


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


# --------------------------------------------------------------------------- the budgeted_case


def test_budgeted_sweep_on_logits_agrees_with_the_original(budgeted_case: dict[str, Any]) -> None:
    """The public sweep takes logits; log-probabilities give back the original's softmax up to
    float32 rounding, so thresholds agree to rounding and the decisions exactly."""
    (val_probs, val_targets), (test_probs, test_targets) = (
        budgeted_case["val"],
        budgeted_case["test"],
    )
    records = budgeted_sweep(
        val_probs.log(), val_targets, test_probs.log(), test_targets, budgeted_case["flops"]
    )
    for record, want in zip(records, budgeted_case["results"], strict=True):
        got = [
            1e8 if t == math.inf else -1e8 if t == -math.inf else t
            for t in record.policy.thresholds
        ]
        assert got == pytest.approx(want["thresholds"], rel=1e-6, abs=0), record.p
        assert 100.0 * record.accuracy == pytest.approx(want["test_accuracy_pct"], abs=1e-9)
        assert record.mean_cost == pytest.approx(want["expected_flops"], rel=1e-6)


def test_reference_counts_and_cost_arithmetic() -> None:
    # Exactly, 1300 * 1.5**k / 12.1875 is 160, 240, 360, 540: every count sits on an integer,
    # so the floor goes whichever way the last ulp of float32 exp/log goes, and that differs
    # between CPUs (AVX2 and AVX-512 kernels round differently). Both sides are the original's
    # arithmetic; away from integers the counts are machine-independent.
    assert reference_exit_counts(1.5, 4, 1300) in ([160, 240, 360, 540], [160, 240, 359, 539])
    # float64 lands just below two of the integers, on every machine.
    assert [math.floor(1300 * f) for f in geometric_exit_fractions(1.5, 4)] == [160, 239, 359, 540]
    # Away from integer boundaries: 1000 * 1.5**k / 12.1875 = 123.08, 184.62, 276.92, 415.38.
    assert reference_exit_counts(1.5, 4, 1000) == [123, 184, 276, 415]
    assert reference_exit_counts(1.0, 4, 100) == [25, 25, 25, 25]
    assert reference_exit_counts(1e30, 8, 100)[-1] == 100  # float32 overflow falls back


def test_sweep_thresholds_are_calibrate_shares_away_from_rounding_edges() -> None:
    val_logits, val_targets = make_data(5, 2000, 5, seed=5, quantum=0.5)
    test_logits, test_targets = make_data(5, 2000, 5, seed=6)
    records = budgeted_sweep(
        val_logits, val_targets, test_logits, test_targets, [1, 2, 3, 4, 5], ps=[0.4, 1.0, 1.6]
    )
    for record in records:
        fractions = geometric_exit_fractions(record.p, 5)
        assert record.policy == calibrate_shares(val_logits, fractions)


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
        assert r.policy.num_classes == 4
        assert r.policy.cost_convention is None and r.policy.input_size is None
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
    recorded = budgeted_sweep(
        val_logits,
        val_targets,
        test_logits,
        test_targets,
        [1.0, 2.0, 4.0],
        ps=[1.0],
        cost_convention="reference",
        input_size=32,
    )[0].policy
    assert (recorded.cost_convention, recorded.input_size) == ("reference", (32, 32))


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
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        sweep(test_targets=test_targets.view(8, 10))
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        sweep(test_targets=test_targets.view(80, 1))
    with pytest.raises(TypeError, match="integer dtype"):
        sweep(test_targets=test_targets.float())
    with pytest.raises(TypeError, match="integer dtype"):
        sweep(val_targets=val_targets.bool())
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        sweep(test_targets=test_targets + 4)
    with pytest.raises(ValueError, match=r"class index -1"):
        sweep(val_targets=val_targets - 1)
    with pytest.raises(TypeError, match="ps must be"):
        sweep(ps="12")
    with pytest.raises(TypeError, match="p must be"):
        sweep(ps=[1.0, "2"])
    with pytest.raises(ValueError, match="finite"):
        sweep(costs=[1.0, math.nan, 3.0])
    with pytest.raises(TypeError, match="costs"):
        sweep(costs="123")
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


# --------------------------------------------------------------------------- any ExitDecider


class FirstConfidentGate:
    """A policy written without adanet: leave once the top logit beats the runner-up by a
    fixed gap that shrinks with depth."""

    def __init__(self, gaps: list[float]) -> None:
        self.gaps = gaps
        self.num_exits = len(gaps)

    def initial_state(self, batch_size: int, device: object = None) -> dict[str, Tensor]:
        return {}

    def step(self, exit_index: int, logits: Tensor, state: Any) -> tuple[Tensor, Any]:
        top = logits.topk(2, dim=1).values
        return (top[:, 0] - top[:, 1]) >= self.gaps[exit_index], state

    def simulate(self, logits: Tensor) -> Tensor:
        top = logits.topk(2, dim=2).values
        gaps = torch.tensor(self.gaps).view(-1, 1)
        leave = (top[..., 0] - top[..., 1]) >= gaps
        leave[-1] = True
        return leave.to(torch.int8).argmax(dim=0)


def test_custom_policy_through_calibrator() -> None:
    val_logits, val_targets = make_data(4, 300, 5, seed=21)
    test_logits, test_targets = make_data(4, 300, 5, seed=22)
    seen: list[tuple[float, int]] = []

    def calibrator(p: float, logits: Tensor, targets: Tensor) -> FirstConfidentGate:
        seen.append((p, logits.shape[1]))
        return FirstConfidentGate([3.0 * p, 2.0 * p, p, 0.0])

    records = budgeted_sweep(
        val_logits,
        val_targets,
        test_logits,
        test_targets,
        [1, 2, 3, 4],
        ps=[0.5, 2.0],
        calibrator=calibrator,
    )
    assert seen == [(0.5, 300), (2.0, 300)]
    for record in records:
        assert isinstance(record.policy, FirstConfidentGate)
        exits = record.policy.simulate(test_logits)
        counts = torch.bincount(exits, minlength=4)
        assert record.exit_fractions == tuple(c / 300 for c in counts.tolist())
        preds = test_logits.argmax(dim=2).gather(0, exits.unsqueeze(0)).squeeze(0)
        assert record.accuracy == pytest.approx(float((preds == test_targets).double().mean()))
    assert records[0].mean_cost < records[1].mean_cost

    def broken(p: float, logits: Tensor, targets: Tensor) -> object:
        return None

    with pytest.raises(TypeError, match="ExitDecider"):
        budgeted_sweep(
            val_logits,
            val_targets,
            test_logits,
            test_targets,
            [1, 2, 3, 4],
            ps=[1.0],
            calibrator=broken,  # type: ignore[arg-type]
        )


def test_an_empty_validation_or_test_set_is_refused() -> None:
    logits = torch.randn(3, 20, 5, generator=torch.Generator().manual_seed(0))
    targets = torch.zeros(20, dtype=torch.long)
    empty, no_targets = torch.zeros(3, 0, 5), torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match="val_logits holds 0 samples"):
        budgeted_sweep(empty, no_targets, logits, targets, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"test_logits (holds 0 samples|have no samples)"):
        budgeted_sweep(logits, targets, empty, no_targets, [1.0, 2.0, 3.0])
