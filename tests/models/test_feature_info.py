"""FeatureInfo: timm's accessors, and indexing and iteration that give the entries as dicts."""

from __future__ import annotations

import pytest

from adanet.models import FeatureInfo

ENTRIES = [
    {"num_chs": 8, "reduction": 2, "module": "a.0", "exit": 0},
    {"num_chs": 16, "reduction": 4, "module": "a.1", "exit": 1},
]


def test_accessors_answer_for_all_one_or_several_entries() -> None:
    info = FeatureInfo(ENTRIES)
    assert (
        info.channels() == [8, 16] and info.channels(1) == 16 and info.channels([1, 0]) == [16, 8]
    )
    assert info.reduction() == [2, 4] and info.module_name(0) == "a.0"
    assert info.get("exit") == [0, 1] and len(info) == 2


def test_indexing_and_iteration_give_copies_of_the_dicts() -> None:
    info = FeatureInfo(ENTRIES)
    assert info[0]["num_chs"] == 8 and [e["module"] for e in info] == ["a.0", "a.1"]
    info[0]["num_chs"] = 99
    assert info.channels(0) == 8 and info[-1:] == [ENTRIES[1]]
    assert info == FeatureInfo(ENTRIES) and info != ENTRIES


def test_an_entry_missing_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"entry 0 lacks \['reduction'\]"):
        FeatureInfo([{"num_chs": 1, "module": "x"}])


def test_bad_indices_say_what_is_allowed() -> None:
    info = FeatureInfo(ENTRIES)
    with pytest.raises(IndexError, match="exit index 5 is out of range for 2 exits"):
        info.channels(5)
    with pytest.raises(TypeError, match="idx must be an exit index"):
        info.channels("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exit indices must be ints"):
        info.reduction([0, 1.0])  # type: ignore[list-item]
