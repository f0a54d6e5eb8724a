"""Tests for adanet.calibration.online.family: the tables an online controller steers by."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from adanet.calibration.online import CEILING, DisagreementMap, ThresholdFamily
from adanet.calibration.online.family import disagreements
from adanet.policies import EarlyExitPolicy, exit_confidences
from synthetic_logits import make_logits

COSTS = [1.0, 2.0, 4.0, 7.0]


def _tables(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = make_logits(4, 800, seed=seed)
    confidence = exit_confidences(logits, "max_prob").double()
    disagree = disagreements(logits.argmax(2), ~logits.isnan().any(2))
    return logits, confidence, disagree


def test_family_spans_every_cost_and_its_axes_are_monotone() -> None:
    _, confidence, disagree = _tables()
    family = ThresholdFamily.calibrate(confidence, disagree, COSTS, size=41)
    assert len(family.thresholds) == 43  # 41 ratios and the two ends
    assert family.cost[0] == COSTS[0] and family.cost[-1] == COSTS[-1]
    assert family.drop[-1] == 0.0 and family.drop[0] == float(disagree[0].mean())
    assert all(a <= b for a, b in itertools.pairwise(family.cost))
    assert all(a >= b for a, b in itertools.pairwise(family.drop))
    assert all(0.0 <= t <= CEILING for row in family.thresholds for t in row)


@pytest.mark.parametrize("wanted", [1.5, 2.5, 3.3, 5.0, 6.5])
def test_a_wanted_cost_gives_thresholds_that_spend_about_it(wanted: float) -> None:
    _, confidence, disagree = _tables(1)
    family = ThresholdFamily.calibrate(confidence, disagree, COSTS)
    exits = EarlyExitPolicy(family.at("cost", wanted)).exits_from_confidence(confidence)
    spent = float(torch.tensor(COSTS)[exits].mean())
    assert abs(spent - wanted) < 0.05 * wanted  # interpolation between neighbouring members


def test_positions_outside_the_axis_clamp_to_its_ends() -> None:
    _, confidence, disagree = _tables(2)
    family = ThresholdFamily.calibrate(confidence, disagree, COSTS)
    assert family.at("cost", -5.0) == (*family.thresholds[0], -math.inf)
    assert family.at("cost", 99.0) == (*family.thresholds[-1], -math.inf)
    assert family.at("drop", 2.0) == (*family.thresholds[0], -math.inf)
    assert family.at("drop", -1.0)[:-1] == family.thresholds[-1]
    assert family.bounds("cost") == (COSTS[0], COSTS[-1])


def test_map_is_a_decreasing_chance_fitted_to_the_data() -> None:
    _, confidence, disagree = _tables(3)
    mapping = DisagreementMap.fit(confidence, disagree)
    for values in mapping.values:
        assert all(a >= b for a, b in itertools.pairwise(values))
        assert all(0.0 <= v <= 1.0 for v in values)
    exits = torch.randint(0, 4, (800,), generator=torch.Generator().manual_seed(0))
    predicted = mapping(confidence[exits, torch.arange(800)], exits)
    assert bool((predicted[exits == 3] == 0).all())  # the last exit is the reference
    # On the data it was fitted to, it predicts the disagreements of each exit on average.
    for k in range(3):
        mean = float(mapping(confidence[k], torch.full((800,), k)).mean())
        assert mean == pytest.approx(float(disagree[k].mean()), abs=0.02)
    rebuilt = DisagreementMap.from_dict(mapping.to_dict(), 4)
    assert rebuilt == mapping
