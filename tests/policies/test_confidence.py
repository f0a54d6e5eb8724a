"""adanet.policies.confidence: the measures' values worked out by hand, their orientation,
non-finite logits, temperatures, and the measure check."""

from __future__ import annotations

import math

import pytest
import torch

from adanet.policies.confidence import (
    MEASURES,
    check_measure,
    exit_confidences,
    safe_probabilities,
)


def test_each_measure_on_a_hand_computed_row() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    logits = probs.log()
    entropy = -(probs * probs.log()).sum().item()
    expected = {"max_prob": 0.5, "margin": 0.2, "entropy": 1.0 - entropy / math.log(3)}
    for measure, value in expected.items():
        got = exit_confidences(logits, measure)
        assert got.shape == (1,)
        assert got.item() == pytest.approx(value, abs=1e-6), measure


@pytest.mark.parametrize("measure", MEASURES)
def test_a_one_hot_row_is_more_confident_than_a_uniform_one(measure: str) -> None:
    rows = torch.tensor([[30.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    confident, uniform = exit_confidences(rows, measure).tolist()
    assert confident == pytest.approx(1.0, abs=1e-6)
    assert uniform == pytest.approx(0.25 if measure == "max_prob" else 0.0, abs=1e-6)


def test_infinite_and_nan_logits_follow_the_documented_limits() -> None:
    rows = torch.tensor(
        [
            [math.inf, 0.0, 0.0],  # the softmax limit: probability 1 on the +inf class
            [math.inf, math.inf, 0.0],  # uniform over the two +inf classes
            [-math.inf, 0.0, 0.0],  # a class of probability 0
            [math.nan, 0.0, 0.0],  # no meaningful prediction
            [-math.inf, -math.inf, -math.inf],
        ]
    )
    assert exit_confidences(rows, "max_prob").tolist() == [1.0, 0.5, 0.5, -math.inf, -math.inf]
    assert exit_confidences(rows, "entropy")[2].item() == pytest.approx(
        1 - math.log(2) / math.log(3)
    )
    torch.testing.assert_close(
        safe_probabilities(rows[:3]),
        torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]),
    )


def test_temperatures_divide_the_logits_one_or_one_per_exit() -> None:
    logits = torch.tensor([[[2.0, 0.0]], [[2.0, 0.0]]])  # [exits, samples, classes]
    plain = exit_confidences(logits, "max_prob")
    halved = exit_confidences(logits, "max_prob", temperatures=2.0)
    per_exit = exit_confidences(logits, "max_prob", temperatures=[1.0, 2.0])
    assert plain[0, 0].item() == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert halved[0, 0].item() == pytest.approx(1 / (1 + math.exp(-1.0)))
    torch.testing.assert_close(per_exit, torch.stack([plain[0], halved[1]]))


def test_half_precision_logits_are_measured_in_float32() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.5]], dtype=torch.float16)
    got = exit_confidences(logits, "margin")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, exit_confidences(logits.float(), "margin"))


def test_check_measure_accepts_each_measure_and_names_the_allowed_ones() -> None:
    assert [check_measure(m) for m in MEASURES] == list(MEASURES)
    with pytest.raises(ValueError, match="measure must be one of 'max_prob', 'entropy', 'margin'"):
        check_measure("maxprob")
    with pytest.raises(ValueError, match="got 3"):
        check_measure(3)
    with pytest.raises(ValueError, match=r"adanet\.PatienceExitPolicy"):
        check_measure("patience")
    with pytest.raises(ValueError, match="got 'nope'"):
        exit_confidences(torch.zeros(1, 2), "nope")
