"""adanet.training.schedule: the originals' learning-rate rules."""

from __future__ import annotations

import math

import pytest

from adanet.training import (
    LRSchedule,
    learning_rate_at,
)


def test_multistep_matches_the_original_cifar_rule() -> None:
    values = {e: learning_rate_at(e, 0, 10, 0.1, 300, "multistep") for e in (0, 149, 150, 224, 225)}
    assert values[0] == pytest.approx(0.1)
    assert values[149] == pytest.approx(0.1)
    assert values[150] == pytest.approx(0.01)
    assert values[224] == pytest.approx(0.01)
    assert values[225] == pytest.approx(0.001)
    # The batch index does not matter for multistep.
    assert learning_rate_at(150, 7, 10, 0.1, 300, "multistep") == values[150]


def test_multistep_imagenet_rule_and_decay_rate() -> None:
    assert learning_rate_at(29, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.1)
    assert learning_rate_at(30, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.01)
    assert learning_rate_at(60, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.001)
    assert learning_rate_at(8, 0, 5, 1.0, 10, "multistep", decay_rate=0.5) == pytest.approx(0.25)


def test_cosine_is_per_iteration() -> None:
    # t = 2 * 100 + 50 = 250 of T = 1000: 0.5 * 0.1 * (1 + cos(pi / 4)).
    assert learning_rate_at(2, 50, 100, 0.1, 10, "cosine") == pytest.approx(0.0853553390593)
    assert learning_rate_at(0, 0, 100, 0.1, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate_at(5, 0, 100, 0.1, 10, "cosine") == pytest.approx(0.05)
    assert learning_rate_at(9, 99, 100, 0.1, 10, "cosine") == pytest.approx(
        0.05 * (1 + math.cos(math.pi * 999 / 1000))
    )
    schedule = LRSchedule(base_lr=0.1, epochs=10, lr_type="cosine")
    assert schedule(2, 50, 100) == learning_rate_at(2, 50, 100, 0.1, 10, "cosine")


def test_unknown_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="lr_type must be one of 'multistep', 'cosine', got"):
        learning_rate_at(0, 0, 1, 0.1, 1, "linear")  # type: ignore[arg-type]
