"""Tests for adanet.calibration.online.learner: the :class:`Learner`'s integral-control rule on
small hand-made batches. With three exits of cost 1, 2 and 4, a hand-written threshold family
and disagreement map, each expected command is worked out from the rule itself: in cost mode
``command + gain * (target - mean cost)``, in accuracy mode ``command * (eps / estimate) **
gain`` with the estimate floored at ``eps / 16``, both clamped to the family's range and moved
only once ``update_every`` images are pending. The tests check the direction of each move,
the clamping, the waiting for enough images, that NaN rows teach nothing in accuracy mode
(but are charged in cost mode), the audit bookkeeping, and that a saved state continues
exactly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from adanet.calibration.online import CEILING, DisagreementMap, ThresholdFamily
from adanet.calibration.online.audit import (
    AUDIT,
    POSITION,
    WOULD_CONF,
    WOULD_EXIT,
    WOULD_PRED,
    AuditRecord,
)
from adanet.calibration.online.learner import Learner
from adanet.calibration.online.state import ControllerConfig
from controller_configs import COSTS, cost_mode

LAST = len(COSTS) - 1

# Everybody at exit 0; a middle member; everybody at the last exit. Cost spans [1, 4] and the
# drop [0, 0.5].
FAMILY = ThresholdFamily(
    thresholds=((0.0, CEILING), (0.6, 0.4), (CEILING, CEILING)),
    cost=(1.0, 2.0, 4.0),
    drop=(0.5, 0.2, 0.0),
)
# Below confidence 0.5 exit 0 disagrees with the last exit 80% of the time, above it 20%.
MAP = DisagreementMap(edges=((0.5,), (0.5,)), values=((0.8, 0.2), (0.4, 0.1)))

# Three-class logits: max_prob 1/3 (below the map's edge) and about 0.9999 (above it).
UNSURE = [0.0, 0.0, 0.0]
SURE = [10.0, 0.0, 0.0]


def accuracy(**overrides: Any) -> ControllerConfig:
    """Accuracy mode, eps 0.1, a move every 2 images with gain 1."""
    settings: dict[str, Any] = {
        "target_cost": None,
        "max_accuracy_drop": 0.1,
        "update_every": 2,
        "gain": 1.0,
    }
    settings.update(overrides)
    return cost_mode(**settings)


def learner(cfg: ControllerConfig, state: dict[str, Any] | None = None) -> Learner:
    return Learner(cfg, FAMILY, MAP, state)


def batch(exits: list[int], rows: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n]`` exits and ``[n, 3]`` logits."""
    return torch.tensor(exits), torch.tensor(rows)


def feed(model: Learner, exits: list[int], rows: list[list[float]]) -> None:
    model.learn(*batch(exits, rows), None)


def audit_record(would: list[tuple[int, int, int, float]], size: int) -> AuditRecord:
    """A record whose audited images are ``(position, would_exit, would_pred, would_conf)``."""
    notes = torch.zeros(len(would), 5, dtype=torch.float64)
    for row, (position, would_exit, would_pred, would_conf) in enumerate(would):
        notes[row, AUDIT] = 1.0
        notes[row, POSITION] = position
        notes[row, WOULD_EXIT] = would_exit
        notes[row, WOULD_PRED] = would_pred
        notes[row, WOULD_CONF] = would_conf
    return AuditRecord(start=0, size=size, any_audit=True, notes=notes)


# ----------------------------------------------------------------------------- start


def test_a_fresh_learner_starts_at_the_target_with_nothing_learned() -> None:
    model = learner(cost_mode())
    assert model.command == 2.5
    assert model.seen == 0 and model.cost_sum == 0.0
    assert model.thresholds == FAMILY.at("cost", 2.5)
    assert model.thresholds[-1] == -math.inf
    state = model.state_dict()
    assert state["pending_sum"] == 0.0 and state["pending_count"] == 0
    assert state["ledger"] == {"audits": 0, "disagreements": 0, "seen": 0.0, "predicted": 0.0}


@pytest.mark.parametrize(("target", "start"), [(6.0, 4.0), (3.0, 3.0)])
def test_the_start_is_the_target_clamped_to_the_family(target: float, start: float) -> None:
    assert learner(cost_mode(target_cost=target)).command == start


def test_an_accuracy_target_starts_on_the_drop_axis() -> None:
    model = learner(accuracy())
    assert model.command == pytest.approx(0.1)
    assert model.thresholds == FAMILY.at("drop", model.command)
    # Far above the family's largest drop (0.5): it starts at that end.
    assert learner(accuracy(max_accuracy_drop=0.9)).command == 0.5


# ----------------------------------------------------------------------------- cost mode


def test_spending_above_the_target_moves_the_command_down() -> None:
    model = learner(cost_mode())
    before = model.thresholds
    feed(model, [2, 2, 2, 2], [UNSURE] * 4)  # mean cost 4 against a target of 2.5
    assert model.command == pytest.approx(2.5 + 0.5 * (2.5 - 4.0))  # 1.75
    assert model.command < 2.5
    # A cheaper member: the first threshold falls, so more images leave early.
    assert model.thresholds[0] < before[0]
    assert model.thresholds == FAMILY.at("cost", model.command)


def test_spending_below_the_target_moves_the_command_up() -> None:
    model = learner(cost_mode())
    before = model.thresholds
    feed(model, [0, 0, 0, 0], [SURE] * 4)  # mean cost 1
    assert model.command == pytest.approx(2.5 + 0.5 * (2.5 - 1.0))  # 3.25
    assert model.thresholds[0] > before[0]


def test_the_move_is_gain_times_the_error() -> None:
    model = learner(cost_mode(target_cost=2.0, update_every=2))
    feed(model, [0, 2], [SURE, UNSURE])  # costs 1 and 4, mean 2.5: down by 0.5 * 0.5
    assert model.command == pytest.approx(1.75)
    model = learner(cost_mode(target_cost=2.0, update_every=2))
    feed(model, [1, 1], [UNSURE, UNSURE])  # mean 2, the target
    assert model.command == pytest.approx(2.0)


def test_the_command_waits_for_update_every_images_then_uses_their_mean() -> None:
    model = learner(cost_mode())
    feed(model, [2, 2, 2], [UNSURE] * 3)  # 3 of 4 images: no move yet
    assert model.command == 2.5
    assert model.state_dict()["pending_sum"] == pytest.approx(12.0)
    assert model.state_dict()["pending_count"] == 3
    feed(model, [0], [SURE])  # the fourth: the mean over all four is 13 / 4
    assert model.command == pytest.approx(2.5 + 0.5 * (2.5 - 13.0 / 4.0))  # 2.125
    assert model.state_dict()["pending_count"] == 0
    assert model.state_dict()["pending_sum"] == 0.0


def test_a_batch_larger_than_update_every_makes_one_move() -> None:
    model = learner(cost_mode(update_every=2))
    feed(model, [2, 2, 2, 2, 2, 2], [UNSURE] * 6)  # six images, one move by the mean
    assert model.command == pytest.approx(2.5 + 0.5 * (2.5 - 4.0))


def test_every_image_is_counted_and_charged() -> None:
    model = learner(cost_mode())
    feed(model, [0, 1, 2], [SURE, SURE, UNSURE])
    feed(model, [2, 2], [UNSURE, UNSURE])
    assert model.seen == 5
    assert model.cost_sum == pytest.approx(1.0 + 2.0 + 4.0 + 4.0 + 4.0)


@pytest.mark.parametrize(("exit_index", "end"), [(2, 1.0), (0, 4.0)])
def test_a_large_error_is_clamped_to_the_family(exit_index: int, end: float) -> None:
    model = learner(cost_mode(gain=1.5))
    # 2.5 + 1.5 * (2.5 - 4) = 0.25 and 2.5 + 1.5 * (2.5 - 1) = 4.75: both beyond [1, 4].
    feed(model, [exit_index] * 4, [UNSURE] * 4)
    assert model.command == end


def test_nan_logits_are_charged_in_cost_mode() -> None:
    model = learner(cost_mode())
    nan = [math.nan] * 3
    feed(model, [2, 2, 2, 2], [nan] * 4)  # their cost is real: they move the command down
    assert model.command == pytest.approx(1.75)
    assert model.cost_sum == pytest.approx(16.0)


def test_a_constant_stream_pins_the_command_at_an_end_and_stays_finite() -> None:
    cheap, dear = learner(cost_mode()), learner(cost_mode())
    for _ in range(50):
        feed(cheap, [0] * 4, [SURE] * 4)
        feed(dear, [2] * 4, [[math.nan] * 3] * 4)
        assert 1.0 <= cheap.command <= 4.0 and 1.0 <= dear.command <= 4.0
    assert cheap.command == 4.0 and dear.command == 1.0
    json.dumps(cheap.state_dict(), allow_nan=False)
    json.dumps(dear.state_dict(), allow_nan=False)


def test_an_empty_batch_changes_nothing() -> None:
    for cfg in (cost_mode(), accuracy()):
        model = learner(cfg)
        before = model.state_dict()
        model.learn(torch.zeros(0, dtype=torch.long), torch.zeros(0, 3), None)
        assert model.state_dict() == before


# ----------------------------------------------------------------------------- accuracy mode


def test_an_estimate_above_eps_moves_the_drop_command_down() -> None:
    model = learner(accuracy())
    before = model.thresholds
    ratio = model.ledger.ratio  # the audit correction, applied to every estimate
    feed(model, [0, 0], [UNSURE, UNSURE])  # the map says 0.8 each
    estimate = 0.8 * ratio
    assert model.command == pytest.approx(0.1 * (0.1 / estimate))
    assert model.command < 0.1
    # A safer member: the first threshold rises, so fewer images leave early.
    assert model.thresholds[0] > before[0]


def test_an_estimate_below_eps_moves_the_drop_command_up() -> None:
    model = learner(accuracy(gain=0.5))
    feed(model, [LAST, LAST], [UNSURE, UNSURE])  # the last exit never disagrees with itself
    # The estimate 0 is floored at eps / 16, so the step is 16 ** gain = 4.
    assert model.command == pytest.approx(0.4)


def test_a_confident_exit_predicts_less_disagreement_than_an_unsure_one() -> None:
    sure, unsure = learner(accuracy()), learner(accuracy())
    feed(sure, [0, 0], [SURE, SURE])  # 0.2 each
    feed(unsure, [0, 0], [UNSURE, UNSURE])  # 0.8 each
    assert sure.command == pytest.approx(0.1 * 0.1 / (0.2 * sure.ledger.ratio))
    assert unsure.command < sure.command < 0.1


def test_temperatures_scale_the_logits_before_the_map() -> None:
    # [3, 0, 0] has max_prob e^3 / (e^3 + 2), about 0.91; at temperature 10 it is
    # e^0.3 / (e^0.3 + 2), about 0.40: below the map's edge, so 0.8 instead of 0.2.
    rows = [[3.0, 0.0, 0.0]] * 2
    plain = learner(accuracy())
    cooled = learner(accuracy(temperatures=(10.0, 1.0, 1.0)))
    feed(plain, [0, 0], rows)
    feed(cooled, [0, 0], rows)
    assert plain.command == pytest.approx(0.1 * 0.1 / (0.2 * plain.ledger.ratio))
    assert cooled.command == pytest.approx(0.1 * 0.1 / (0.8 * cooled.ledger.ratio))


def test_the_drop_command_never_falls_below_eps_over_16() -> None:
    model = learner(accuracy(gain=1.5))
    for _ in range(40):
        feed(model, [0, 0], [UNSURE, UNSURE])
        assert model.command >= 0.1 / 16 - 1e-12
    assert model.command == pytest.approx(0.1 / 16)
    for _ in range(40):
        feed(model, [LAST, LAST], [SURE, SURE])
        assert model.command <= 0.5
    assert model.command == 0.5  # the family's largest drop


def test_a_zero_drop_command_can_still_rise() -> None:
    # A multiplicative step from 0 would stay at 0; the step starts from the floor eps / 16.
    model = learner(accuracy(gain=0.5), {"command": 0.0})
    assert model.command == 0.0
    feed(model, [LAST, LAST], [SURE, SURE])
    assert model.command == pytest.approx(0.1 / 16 * 4.0)


def test_nan_rows_teach_nothing_in_accuracy_mode() -> None:
    model = learner(accuracy())
    nan = [math.nan] * 3
    feed(model, [LAST, LAST, LAST, LAST], [nan] * 4)
    assert model.command == pytest.approx(0.1)  # no prediction, no move
    assert model.state_dict()["pending_count"] == 0
    assert model.seen == 4 and model.cost_sum == pytest.approx(16.0)  # but seen and charged
    # Mixed with two valid rows at the last exit, only those two count: enough for one move,
    # with estimate 0, so up by 16 ** gain = 16 to 1.6, clamped to the largest drop, 0.5.
    feed(model, [LAST, 0, LAST, 0], [SURE, nan, SURE, nan])
    assert model.state_dict()["pending_count"] == 0
    assert model.command == 0.5


def test_an_infinite_logit_is_a_confident_prediction_not_a_nan() -> None:
    model = learner(accuracy())
    feed(model, [0, 0], [[math.inf, 0.0, 0.0]] * 2)  # max_prob 1: the map says 0.2
    assert model.command == pytest.approx(0.1 * 0.1 / (0.2 * model.ledger.ratio))


@pytest.mark.parametrize("measure", ["entropy", "margin"])
def test_other_measures_also_drive_the_map(measure: str) -> None:
    # Uniform logits have entropy confidence 0 and margin 0; one dominant logit about 1.
    unsure, sure = learner(accuracy(measure=measure)), learner(accuracy(measure=measure))
    feed(unsure, [0, 0], [UNSURE, UNSURE])
    feed(sure, [0, 0], [SURE, SURE])
    assert unsure.command == pytest.approx(0.1 * 0.1 / (0.8 * unsure.ledger.ratio))
    assert sure.command == pytest.approx(0.1 * 0.1 / (0.2 * sure.ledger.ratio))


# ----------------------------------------------------------------------------- audits


def test_audits_in_cost_mode_are_booked_but_do_not_change_the_move() -> None:
    audited = learner(cost_mode(audit_share=0.5, update_every=2))
    plain = learner(cost_mode(audit_share=0.5, update_every=2))
    exits, logits = batch([LAST, LAST], [SURE, SURE])  # the last exit predicts class 0
    # Image 0 would have left at exit 0 saying class 1 (a disagreement); image 1 at exit 1
    # saying class 0 (an agreement).
    record = audit_record([(0, 0, 1, 0.3), (1, 1, 0, 0.7)], size=2)
    audited.learn(exits, logits, record)
    plain.learn(exits, logits, None)
    assert audited.ledger.audits == 2 and audited.ledger.disagreements == 1
    assert audited.ledger.seen == pytest.approx(1.0)
    # Predicted: exit 0 below the edge (0.8) plus exit 1 above it (0.1).
    assert audited.ledger.predicted == pytest.approx(0.9)
    assert audited.command == plain.command == pytest.approx(2.5 + 0.5 * (2.5 - 4.0))


def test_an_audit_that_would_have_reached_the_last_exit_never_disagrees() -> None:
    model = learner(cost_mode(audit_share=0.5))
    record = audit_record([(0, LAST, 2, 0.0)], size=1)
    model.learn(*batch([LAST], [SURE]), record)
    assert model.ledger.audits == 1 and model.ledger.disagreements == 0


def test_audited_images_forced_out_early_or_nan_are_not_audits() -> None:
    model = learner(cost_mode(audit_share=0.5))
    # Image 0 left at exit 1 (a budget forced it out); image 1 has NaN logits.
    record = audit_record([(0, 0, 1, 0.3), (1, 0, 1, 0.3)], size=2)
    model.learn(*batch([1, LAST], [SURE, [math.nan] * 3]), record)
    assert model.ledger.audits == 0


def test_accuracy_mode_counts_an_audited_image_at_the_exit_it_would_have_left() -> None:
    exits, logits = batch([LAST, LAST], [SURE, SURE])
    plain = learner(accuracy(gain=0.5))
    plain.learn(exits, logits, None)  # both at the last exit: estimate 0, the command rises
    assert plain.command == pytest.approx(0.4)
    audited = learner(accuracy(gain=0.5))
    # Both would have left at exit 0 unsure (the map's 0.8) with class 0, agreeing with the
    # last exit: the ledger sees 0 of 1.6 predicted, and the estimate is 2 * 0.8 * ratio / 2.
    record = audit_record([(0, 0, 0, 0.3), (1, 0, 0, 0.3)], size=2)
    audited.learn(exits, logits, record)
    assert audited.ledger.audits == 2 and audited.ledger.disagreements == 0
    assert audited.ledger.predicted == pytest.approx(1.6)
    estimate = 0.8 * audited.ledger.ratio
    assert audited.command == pytest.approx(0.1 * (0.1 / estimate) ** 0.5)
    assert audited.command < 0.1 < plain.command


# ----------------------------------------------------------------------------- state


@pytest.mark.parametrize("make", [cost_mode, accuracy])
def test_a_saved_state_continues_exactly(make: Any) -> None:
    first = learner(make(audit_share=0.5, update_every=3))
    first.learn(*batch([0, LAST], [UNSURE, SURE]), audit_record([(1, 0, 1, 0.3)], size=2))
    first.learn(*batch([1, 2, 0, 0], [SURE, UNSURE, SURE, UNSURE]), None)
    first.learn(*batch([0], [UNSURE]), None)  # pending an update
    saved = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = learner(make(audit_share=0.5, update_every=3), saved)
    assert second.state_dict() == first.state_dict()
    assert second.thresholds == first.thresholds
    for model in (first, second):
        model.learn(*batch([2, 0], [UNSURE, SURE]), None)
        model.learn(*batch([LAST], [SURE]), audit_record([(0, 0, 2, 0.9)], size=1))
    assert second.state_dict() == first.state_dict()
    assert second.thresholds == first.thresholds


def test_the_state_names_every_learned_value() -> None:
    model = learner(cost_mode())
    feed(model, [0, 1, 2], [SURE, SURE, SURE])
    state = model.state_dict()
    assert set(state) == {"command", "pending_sum", "pending_count", "seen", "cost_sum", "ledger"}
    assert state["seen"] == 3 and state["pending_count"] == 3
    assert state["pending_sum"] == pytest.approx(7.0) and state["cost_sum"] == pytest.approx(7.0)
    state["ledger"]["audits"] = 99  # a copy: changing it leaves the learner alone
    assert model.ledger.audits == 0
