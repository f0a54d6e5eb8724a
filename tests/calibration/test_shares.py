"""Tests for adanet.calibration.shares: geometric shares, the greedy rule, cost targets, and
calibration that stays correct with non-finite logits."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor

import adanet
from adanet.calibration.shares import (
    calibrate_for_cost,
    calibrate_shares,
    geometric_exit_fractions,
    greedy_thresholds,
)
from adanet.policies.threshold import EarlyExitPolicy
from synthetic_logits import CALIBRATABLE, make_logits

# --------------------------------------------------------------------------- geometric fractions


def test_geometric_fractions_match_reference_formula() -> None:
    for p in (0.05, 0.5, 1.0, 1.35, 1.95):
        fractions = geometric_exit_fractions(p, 8)
        reference = [p**k for k in range(1, 9)]
        total = sum(reference)
        assert fractions == pytest.approx([r / total for r in reference], rel=1e-12)
        assert math.fsum(fractions) == pytest.approx(1.0, abs=1e-12)
    assert geometric_exit_fractions(1.0, 4) == pytest.approx([0.25] * 4)
    assert geometric_exit_fractions(3.0, 1) == [1.0]


def test_geometric_fractions_are_stable_for_extreme_p() -> None:
    large = geometric_exit_fractions(1e4, 100)
    small = geometric_exit_fractions(1e-4, 100)
    assert all(math.isfinite(f) for f in large + small)
    assert large[-1] > 0.999 and small[0] > 0.999


@pytest.mark.parametrize(("p", "n"), [(0.0, 3), (-1.0, 3), (math.nan, 3), (0.5, 0), (0.5, -2)])
def test_geometric_fractions_errors(p: float, n: int) -> None:
    with pytest.raises(ValueError):
        geometric_exit_fractions(p, n)


# --------------------------------------------------------------------------- greedy shares


def spec_thresholds(confidence: Tensor, counts: list[int]) -> list[float]:
    """The documented greedy rule, spelled out on Python lists: exit k's threshold is the
    counts[k]-th largest confidence among the samples still there (inf if there are fewer),
    and every sample at or above it leaves."""
    conf = confidence.tolist()
    still_there = set(range(len(conf[0])))
    thresholds = []
    for k, wanted in enumerate(counts[:-1]):
        ranked = sorted((conf[k][i] for i in still_there), reverse=True)
        threshold = ranked[wanted - 1] if 1 <= wanted <= len(ranked) else math.inf
        thresholds.append(threshold)
        still_there = {i for i in still_there if not conf[k][i] >= threshold}
    return [*thresholds, -math.inf]


@pytest.mark.parametrize(
    ("quantum", "num_classes", "seed"), [(None, 10, 0), (0.5, 4, 1), (1.0, 3, 2), (1.0, 6, 3)]
)
def test_calibrate_follows_the_greedy_rule(
    quantum: float | None, num_classes: int, seed: int
) -> None:
    logits = make_logits(
        num_exits=6, num_samples=600, num_classes=num_classes, seed=seed, quantum=quantum
    )
    conf = torch.softmax(logits, dim=2).amax(dim=2)
    if quantum is not None:
        # Quantised logits must really produce tied confidences, or the test proves nothing.
        assert torch.unique(conf[0]).numel() < 300
    for p in (0.05, 0.3, 0.75, 1.0, 1.4, 1.95):
        fractions = geometric_exit_fractions(p, 6)
        counts = [math.floor(600 * f) for f in fractions]
        policy = calibrate_shares(logits, fractions)
        assert list(policy.thresholds) == spec_thresholds(conf, counts), p
        assert greedy_thresholds(conf, counts) == policy.thresholds
        assert calibrate_shares(logits, fractions) == policy
        assert policy.num_classes == num_classes


def test_calibrate_edge_shares_zero_and_too_many() -> None:
    logits = make_logits(num_exits=4, num_samples=100)
    # floor(100 * 0.005) == 0 -> the reference never sets a threshold -> nobody leaves.
    policy = calibrate_shares(logits, [0.005, 0.5, 0.0, 0.495])
    assert policy.thresholds[0] == math.inf and policy.thresholds[2] == math.inf
    assert policy.thresholds[-1] == -math.inf
    counts = torch.bincount(policy.simulate(logits), minlength=4).tolist()
    assert counts == [0, 50, 0, 50]


def test_calibrate_sixty_percent_at_first_exit() -> None:
    logits = make_logits(num_exits=3, num_samples=5000, seed=7)
    for measure in CALIBRATABLE:
        policy = calibrate_shares(logits, [0.6, 0.2, 0.2], measure=measure)
        counts = torch.bincount(policy.simulate(logits), minlength=3).tolist()
        assert counts == [3000, 1000, 1000], measure


def test_calibrate_accepts_list_of_tensors() -> None:
    logits = make_logits(num_exits=3, num_samples=500)
    fractions = [0.3, 0.3, 0.4]
    assert calibrate_shares(list(logits), fractions) == calibrate_shares(logits, fractions)


@pytest.mark.parametrize(
    "fractions",
    [[0.5, 0.5], [0.5, 0.25, 0.25, 0.0], [0.5, -0.1, 0.6], [0.5, 0.2, 0.2], [0.4, 0.4, 0.3]],
)
def test_calibrate_rejects_bad_fractions(fractions: list[float]) -> None:
    with pytest.raises(ValueError, match="exit_fractions"):
        calibrate_shares(make_logits(num_exits=3, num_samples=20), fractions)


def test_calibrate_tolerates_rounding_in_fractions() -> None:
    logits = make_logits(num_exits=3, num_samples=20)
    calibrate_shares(logits, [0.1, 0.2, 0.7 + 5e-7])


def test_calibrate_rejects_patience_and_unknown_measures() -> None:
    logits = make_logits(num_exits=3, num_samples=20)
    with pytest.raises(ValueError, match="max_prob"):
        calibrate_shares(logits, [0.2, 0.3, 0.5], measure="patience")
    with pytest.raises(ValueError, match="max_prob"):
        calibrate_shares(logits, [0.2, 0.3, 0.5], measure="confidence")


# --------------------------------------------------------------------------- calibrate_for_cost


def mean_cost(policy: EarlyExitPolicy, logits: Tensor, costs: list[float]) -> float:
    counts = torch.bincount(policy.simulate(logits), minlength=len(costs)).tolist()
    return sum(c * w for c, w in zip(counts, costs, strict=True)) / logits.shape[1]


@pytest.mark.parametrize("measure", CALIBRATABLE)
def test_calibrate_for_cost_meets_budget(measure: str) -> None:
    logits = make_logits(num_exits=5, num_samples=3000, seed=11)
    costs = [10.0, 25.0, 45.0, 70.0, 100.0]
    previous = -1.0
    for target in (12.0, 20.0, 40.0, 60.0, 85.0, 99.0):
        policy = calibrate_for_cost(logits, costs, target, measure=measure)
        spent = mean_cost(policy, logits, costs)
        assert spent <= target + 1e-9
        # With 3000 continuous samples the geometric family can get close to the budget.
        assert spent >= target - 0.05 * (costs[-1] - costs[0]), (target, spent)
        assert spent >= previous
        previous = spent
        assert policy.measure == measure


def test_calibrate_for_cost_extremes() -> None:
    logits = make_logits(num_exits=4, num_samples=400)
    costs = [1.0, 2.0, 3.0, 4.0]
    all_last = calibrate_for_cost(logits, costs, 4.0)
    assert all_last.simulate(logits).tolist() == [3] * 400
    assert calibrate_for_cost(logits, costs, 1e9) == all_last
    all_first = calibrate_for_cost(logits, costs, 1.0)
    assert all_first.simulate(logits).tolist() == [0] * 400
    with pytest.raises(ValueError, match="costs\\[0\\]"):
        calibrate_for_cost(logits, costs, 0.99)


@pytest.mark.parametrize(
    "costs", [[1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0], [-1.0, 2.0, 3.0, 4.0], [1, 2, math.nan, 4]]
)
def test_calibrate_for_cost_rejects_bad_costs(costs: list[float]) -> None:
    with pytest.raises(ValueError, match="costs"):
        calibrate_for_cost(make_logits(num_exits=4, num_samples=20), costs, 2.0)


# --------------------------------------------------------------------------- non-finite logits


def test_an_infinite_logit_does_not_corrupt_the_quotas() -> None:
    logits = make_logits(num_exits=3, num_samples=20, seed=5)
    logits[0, 3, 2] = math.inf  # one sample is infinitely sure at exit 0
    logits[1, 7, :] = math.nan  # another has no usable prediction at exit 1
    policy = calibrate_shares(logits, [0.3, 0.3, 0.4])
    counts = torch.bincount(policy.simulate(logits), minlength=3).tolist()
    assert counts == [6, 6, 8]
    exits = policy.simulate(logits)
    assert exits[3] == 0  # max_prob of a +inf logit is 1: the most confident of all
    assert exits[7] != 1  # a NaN row is never confident


def test_nan_rows_never_fill_a_quota() -> None:
    logits = make_logits(num_exits=3, num_samples=10, seed=6)
    logits[0, :6] = math.nan
    # 5 wanted at exit 0 but only 4 samples have a confidence there: like the reference when
    # too few samples remain, nobody leaves rather than the NaN rows.
    policy = calibrate_shares(logits, [0.5, 0.2, 0.3])
    assert policy.thresholds[0] == math.inf
    policy = calibrate_shares(logits, [0.4, 0.3, 0.3])
    exits = policy.simulate(logits)
    assert (exits[:6] != 0).all() and int((exits == 0).sum()) == 4
    nan_conf = torch.tensor(
        [[math.nan, 0.9, 0.5], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], dtype=torch.float64
    )
    # NaN sorts first in torch; as "no confidence" it must not be the top pick at exit 0.
    assert greedy_thresholds(nan_conf, [1, 5]) == (0.9, math.inf, -math.inf)
    assert greedy_thresholds(nan_conf, [1, 2]) == (0.9, 0.1, -math.inf)


# --------------------------------------------------------------------------- bad types


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda x: calibrate_shares(x, "0.5,0.5"), TypeError),
        (lambda x: calibrate_shares(x, [0.5, "0.5"]), TypeError),
        (lambda x: calibrate_shares(x, 0.5), TypeError),
        (lambda x: calibrate_shares("logits", [0.5, 0.5]), TypeError),
        (lambda x: calibrate_shares(x.long(), [0.5, 0.5]), TypeError),
        (lambda x: calibrate_shares(x, [0.5, 0.5], measure=3), ValueError),
        (lambda x: calibrate_for_cost(x, "12", 1.5), TypeError),
        (lambda x: calibrate_for_cost(x, [1.0, 2.0], "1.5"), TypeError),
        (lambda x: calibrate_for_cost(x, [1.0, math.inf], 1.5), ValueError),
        (lambda x: calibrate_for_cost(x, [1.0, 2.0], math.nan), ValueError),
        (lambda x: calibrate_shares(x, [0.5, 0.5], temperatures=[1.0, 0.0]), ValueError),
        (lambda x: calibrate_shares(x, [0.5, 0.5], temperatures=[1.0]), ValueError),
        (lambda x: geometric_exit_fractions("0.5", 2), TypeError),
    ],
)
def test_wrong_types_give_clear_errors(call: object, error: type[Exception]) -> None:
    logits = make_logits(num_exits=2, num_samples=10)
    with pytest.raises(error):
        call(logits)  # type: ignore[operator]


def test_temperatures_and_context_are_recorded() -> None:
    logits = make_logits(num_exits=3, num_samples=300)
    temps = [2.0, 1.5, 1.0]
    policy = calibrate_shares(logits, [0.3, 0.3, 0.4], temperatures=temps)
    assert policy.temperatures == (2.0, 1.5, 1.0)
    plain = calibrate_shares(logits / torch.tensor(temps).view(3, 1, 1), [0.3, 0.3, 0.4])
    assert torch.equal(
        policy.simulate(logits), plain.simulate(logits / torch.tensor(temps).view(3, 1, 1))
    )
    costed = calibrate_for_cost(
        logits, [1.0, 2.0, 3.0], 2.0, cost_convention="reference", input_size=32
    )
    assert (costed.num_classes, costed.cost_convention, costed.input_size) == (
        10,
        "reference",
        (32, 32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adanet.calibration.calibrate_for_cost(logits, [1.0, 2.0, 3.0], 2.0).num_classes == 10


def test_no_samples_are_refused() -> None:
    empty = torch.zeros(3, 0, 10)
    with pytest.raises(ValueError, match="logits holds 0 samples"):
        adanet.calibrate_shares(empty, [0.4, 0.3, 0.3])
    with pytest.raises(ValueError, match="logits holds 0 samples"):
        calibrate_for_cost(empty, [1.0, 2.0, 3.0], 2.0)
