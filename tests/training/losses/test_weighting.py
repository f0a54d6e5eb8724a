"""adanet.training.losses.weighting: the named schemes and the validation of weight lists."""

from __future__ import annotations

import pytest

from adanet.training.losses import (
    exit_weights,
    resolve_weights,
)


def test_exit_weights_schemes() -> None:
    assert exit_weights(3, "uniform") == [1.0, 1.0, 1.0]
    assert exit_weights(4, "linear") == [0.25, 0.5, 0.75, 1.0]
    assert exit_weights(1, "linear") == [1.0]


@pytest.mark.parametrize("bad", [0, -2])
def test_exit_weights_rejects_bad_count(bad: int) -> None:
    with pytest.raises(ValueError, match="num_exits"):
        exit_weights(bad, "uniform")


def test_exit_weights_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown weight scheme"):
        exit_weights(3, "cubic")  # type: ignore[arg-type]


def test_resolve_weights_accepts_lists_and_names() -> None:
    assert resolve_weights(None, 2) == [1.0, 1.0]
    assert resolve_weights("linear", 2) == [0.5, 1.0]
    assert resolve_weights([0.0, 2], 2) == [0.0, 2.0]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "2 exits"),
        ([1.0, 1.0, 1.0], "2 exits"),
        ([1.0, -0.5], "non-negative"),
        ([1.0, float("nan")], "finite"),
        ([float("inf"), 1.0], "finite"),
        ([0.0, 0.0], "positive"),
    ],
)
def test_resolve_weights_validation(weights: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_weights(weights, 2)
