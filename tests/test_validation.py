"""Tests of adanet._validation, the argument checks every public function shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adanet._validation import (
    is_int,
    is_real,
    parse_input_size,
    require_bool,
    require_choice,
    require_fraction,
    require_index,
    require_int,
    require_int_tuple,
    require_real,
)


def test_is_int_and_is_real_exclude_bools() -> None:
    assert is_int(3) and not is_int(True) and not is_int(3.0) and not is_int("3")
    assert is_real(3) and is_real(2.5) and is_real(np.float32(1.5))
    assert not is_real(False) and not is_real("1.5") and not is_real(None)


@pytest.mark.parametrize(
    ("given", "channels", "expected"),
    [
        (32, 3, (3, 32, 32)),
        ((16, 24), 1, (1, 16, 24)),
        ([3, 8, 8], 3, (3, 8, 8)),
        (torch.Size([2, 5]), None, (2, 5)),
        ((3, 7, 9), None, (7, 9)),
    ],
)
def test_parse_input_size_reads_every_spelling(
    given: object, channels: int | None, expected: tuple[int, ...]
) -> None:
    assert parse_input_size(given, channels) == expected


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        (True, TypeError, "input_size must be"),
        (32.0, TypeError, "input_size must be"),
        ("32", TypeError, "input_size must be"),
        ((32, 32.0), TypeError, "input_size must be"),
        ((0, 32), ValueError, "ints >= 1"),
        ((1, 2, 3, 4), ValueError, "ints >= 1"),
        ((1, 32, 32), ValueError, "has 1 channels; the model has 3"),
    ],
)
def test_parse_input_size_names_the_bad_value(given: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        parse_input_size(given, 3)


def test_require_real_and_index() -> None:
    assert require_real("x", 2) == 2.0
    assert require_real("x", math.inf, finite=False) == math.inf
    with pytest.raises(ValueError, match="finite"):
        require_real("x", math.inf)
    with pytest.raises(ValueError, match="a number"):
        require_real("x", math.nan, finite=False)
    with pytest.raises(TypeError, match="x must be a finite number, got True"):
        require_real("x", True)
    assert require_index("k", -1, 4) == 3 and require_index("k", 2, 4) == 2
    with pytest.raises(ValueError, match="k 4 is out of range for 4 entries"):
        require_index("k", 4, 4)
    with pytest.raises(TypeError, match="k must be an int"):
        require_index("k", 1.0, 4)


def test_the_require_helpers_name_value_and_what_is_allowed() -> None:
    require_int("n", 2, 1)
    with pytest.raises(TypeError, match="n must be an int >= 1, got True"):
        require_int("n", True, 1)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        require_int("n", 0, 1)
    with pytest.raises(ValueError, match="hold ints >= 1"):
        require_int_tuple("sizes", (1, 0), 1)
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\]"):
        require_fraction("f", 0, low=0, high=1, low_inclusive=False, high_inclusive=True)
    with pytest.raises(ValueError, match="must be one of 'a', 'b', got 'c'"):
        require_choice("mode", "c", ("a", "b"))
    with pytest.raises(TypeError, match="flag must be a bool"):
        require_bool("flag", 1)
