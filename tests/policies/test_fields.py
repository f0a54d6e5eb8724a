"""The validated fields of a threshold policy (adanet.policies.fields): the JSON encoding of
infinite thresholds, number sequences that refuse strings and bools, keys, temperatures,
input sizes and the recorded context."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from adanet.policies import fields


@pytest.mark.parametrize("value", [math.inf, -math.inf, 0.25, -3.0, 0.0])
def test_thresholds_survive_strict_json(value: float) -> None:
    text = json.dumps(fields.encode_threshold(value), allow_nan=False)
    assert fields.decode_threshold(json.loads(text)) == value


@pytest.mark.parametrize(("text", "value"), [(" +Infinity", math.inf), ("-INF", -math.inf)])
def test_spelled_infinities_are_read(text: str, value: float) -> None:
    assert fields.decode_threshold(text) == value


@pytest.mark.parametrize("value", ["nan", "0.5", True, None, [0.5], 10**400])
def test_anything_else_is_not_a_threshold(value: Any) -> None:
    with pytest.raises(ValueError, match="cannot decode threshold"):
        fields.decode_threshold(value)


def test_float_tuple_takes_numbers_and_real_tensors() -> None:
    assert fields.float_tuple("t", [1, 2.5]) == (1.0, 2.5)
    assert fields.float_tuple("t", torch.tensor([[1.0], [2.0]])) == (1.0, 2.0)
    assert fields.float_tuple("t", [torch.tensor(3.0)]) == (3.0,)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("12", "t must be a sequence of numbers"),
        (3.0, "t must be a sequence of numbers"),
        (["1", "2"], "t must be a sequence of numbers"),
        ([True, 1.0], "t must be a sequence of numbers"),
        ([torch.tensor([1.0, 2.0])], "t must be a sequence of numbers"),
        (torch.tensor([True, False]), "t must hold real numbers"),
        ([10**400], "beyond float's range"),
    ],
)
def test_float_tuple_refuses_what_is_not_numbers(values: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        fields.float_tuple("t", values)


def test_unknown_keys_are_named_with_the_allowed_ones() -> None:
    fields.check_keys({"thresholds": 1}, ["thresholds", "temperatures"], "policy")
    with pytest.raises(
        ValueError, match=r"unknown policy keys \['temperature'\]; allowed: 'thresholds'"
    ):
        fields.check_keys({"temperature": 1}, ["thresholds"], "policy")


def test_temperatures_are_one_positive_finite_value_per_exit() -> None:
    assert fields.check_temperatures(None, 3) is None
    assert fields.check_temperatures([1, 2, 0.5], 3) == (1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="2 entries for 3 exits"):
        fields.check_temperatures([1.0, 1.0], 3)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="positive and finite"):
            fields.check_temperatures([1.0, bad], 2)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, None), (32, (32, 32)), ((24, 32), (24, 32)), ([3, 24, 32], (24, 32))],
)
def test_input_sizes_normalise_to_height_and_width(
    size: Any, expected: tuple[int, int] | None
) -> None:
    assert fields.normalise_input_size(size) == expected


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (0, ValueError),
        ((32,), ValueError),
        ((1, 3, 32, 32), ValueError),
        ((0, 32), ValueError),
        ((32.0, 32), TypeError),
        ((True, 32), TypeError),
        ("32", TypeError),
        (32.0, TypeError),
    ],
)
def test_bad_input_sizes_are_refused(size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="input_size"):
        fields.normalise_input_size(size)


def test_the_recorded_context_is_checked() -> None:
    fields.check_context(None, None)
    fields.check_context(10, "actual")
    for classes in (0, True, 2.0, "10"):
        with pytest.raises(ValueError, match="num_classes must be None or an int >= 1"):
            fields.check_context(classes, None)
    for convention in ("", 3):
        with pytest.raises(ValueError, match="cost_convention must be None or a non-empty"):
            fields.check_context(None, convention)
