"""Tests of ``adanet.models.state``: the flatten / unflatten pair over nested lists, tuples,
named tuples, dicts and dataclasses (distinct tensors listed once, other values carried as
they are), ``spec_size``, ``flatten_like`` and the ``StateStructureError`` it raises for a
state shaped unlike the spec, and ``select_samples``, which keeps the same rows of every
tensor in a state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
import torch
from torch import Tensor

from adanet.models import select_samples
from adanet.models.state import (
    StateStructureError,
    flatten_like,
    flatten_state,
    spec_size,
    unflatten_state,
)


@dataclass
class _State:
    x: Tensor
    step: int


class _Pair(NamedTuple):
    a: Tensor
    b: list[Tensor]


@dataclass(frozen=True)
class _Frozen:
    features: tuple[Tensor, ...]
    label: str


@dataclass
class _Derived:
    rows: Tensor
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.count = int(self.rows.shape[0])


def _tensors(n: int) -> list[Tensor]:
    """``n`` distinct 4-row tensors whose values tell them apart."""
    return [torch.arange(4.0).reshape(4, 1) + 100 * k for k in range(n)]


# ------------------------------------------------------------------- flatten / unflatten


def test_flatten_lists_distinct_tensors_in_order_of_first_appearance() -> None:
    a, b, c, d = _tensors(4)
    state = {"first": a, "nested": [b, (c, a)], "pair": _Pair(d, [b])}
    tensors, spec = flatten_state(state)
    assert len(tensors) == 4
    assert all(got is want for got, want in zip(tensors, [a, b, c, d], strict=True))
    assert spec_size(spec) == 4


def test_round_trip_keeps_every_container_type_and_tensor() -> None:
    a, b, c, d, e = _tensors(5)
    marker = object()
    state: dict[str, Any] = {
        "list": [a, [b]],
        "tuple": (c, "word", None),
        "pair": _Pair(d, [a]),
        "data": _State(e, 7),
        "frozen": _Frozen((b, c), "label"),
        "marker": marker,
    }
    tensors, spec = flatten_state(state)
    rebuilt = unflatten_state(spec, tensors)

    assert list(rebuilt) == list(state)  # same keys, same order
    assert type(rebuilt["list"]) is list and type(rebuilt["list"][1]) is list
    assert rebuilt["list"][0] is a and rebuilt["list"][1][0] is b
    assert type(rebuilt["tuple"]) is tuple and rebuilt["tuple"][0] is c
    assert rebuilt["tuple"][1:] == ("word", None)
    assert type(rebuilt["pair"]) is _Pair
    assert rebuilt["pair"].a is d and rebuilt["pair"].b[0] is a
    assert type(rebuilt["data"]) is _State
    assert rebuilt["data"].x is e and rebuilt["data"].step == 7
    assert type(rebuilt["frozen"]) is _Frozen and rebuilt["frozen"].label == "label"
    assert rebuilt["frozen"].features[0] is b and rebuilt["frozen"].features[1] is c
    assert rebuilt["marker"] is marker  # a non-tensor value is the very same object


def test_unflatten_puts_other_tensors_where_the_originals_were() -> None:
    a, b = _tensors(2)
    data = _State(a, 3)
    state = [data, {"b": b, "again": a}]
    _, spec = flatten_state(state)
    new_a, new_b = torch.zeros(1), torch.ones(2)
    rebuilt = unflatten_state(spec, [new_a, new_b])
    assert rebuilt[0].x is new_a and rebuilt[0].step == 3
    assert rebuilt[1]["b"] is new_b and rebuilt[1]["again"] is new_a
    # The original state is left as it was: the dataclass is copied, not updated.
    assert data.x is a


def test_a_tensor_appearing_twice_is_listed_once_and_rebuilt_in_both_places() -> None:
    x, y = _tensors(2)
    state = [x, (x, y), {"k": x}]
    tensors, spec = flatten_state(state)
    assert len(tensors) == 2 and tensors[0] is x and tensors[1] is y
    p, q = torch.zeros(1), torch.ones(1)
    rebuilt = unflatten_state(spec, [p, q])
    assert rebuilt[0] is p and rebuilt[1][0] is p and rebuilt[2]["k"] is p
    assert rebuilt[1][1] is q


def test_equal_but_distinct_tensors_are_listed_separately() -> None:
    tensors, _ = flatten_state([torch.zeros(3), torch.zeros(3)])
    assert len(tensors) == 2


def test_a_state_without_tensors_flattens_to_nothing_and_comes_back_unchanged() -> None:
    state = {"step": 4, "names": ["a", "b"], "pair": (1.5, None)}
    tensors, spec = flatten_state(state)
    assert tensors == [] and spec_size(spec) == 0
    assert unflatten_state(spec, []) == state


def test_a_bare_tensor_is_a_state() -> None:
    x = torch.arange(3)
    tensors, spec = flatten_state(x)
    assert len(tensors) == 1 and tensors[0] is x
    assert unflatten_state(spec, tensors) is x


def test_a_dataclass_field_outside_init_is_computed_again_on_rebuild() -> None:
    state = _Derived(torch.zeros(5, 2))
    tensors, spec = flatten_state(state)
    assert len(tensors) == 1
    rebuilt = unflatten_state(spec, [torch.zeros(2, 2)])
    assert rebuilt.count == 2 and state.count == 5


# --------------------------------------------------------------------------------- spec_size


@pytest.mark.parametrize(
    ("state", "size"),
    [
        (7, 0),
        ([], 0),
        ({}, 0),
        ([torch.zeros(1)], 1),
        ((torch.zeros(1), [torch.zeros(1), {"a": torch.zeros(1)}]), 3),
        (_State(torch.zeros(1), 0), 1),
        (_Pair(torch.zeros(1), [torch.zeros(1), torch.zeros(1)]), 3),
    ],
)
def test_spec_size_counts_the_distinct_tensors(state: Any, size: int) -> None:
    tensors, spec = flatten_state(state)
    assert spec_size(spec) == size == len(tensors)


# ------------------------------------------------------------------------------ flatten_like


def test_flatten_like_puts_another_states_tensors_at_the_specs_positions() -> None:
    a, b, c = _tensors(3)
    _, spec = flatten_state({"x": [a, b], "pair": _Pair(c, []), "data": _State(a, 1)})
    p, q, r, s = _tensors(4)
    other = {"x": [p, q], "pair": _Pair(r, []), "data": _State(s, 99)}
    out: list[Tensor | None] = [None] * spec_size(spec)
    flatten_like(spec, other, out)
    # a sat at position 0 in two places: the first tensor found there (p) is kept.
    assert len(out) == 3 and out[0] is p and out[1] is q and out[2] is r


def test_flatten_like_keeps_a_tensor_already_placed() -> None:
    a = torch.zeros(1)
    _, spec = flatten_state([a])
    placed, other = torch.ones(1), torch.full((1,), 2.0)
    out: list[Tensor | None] = [placed]
    flatten_like(spec, [other], out)
    assert out[0] is placed


def test_flatten_like_ignores_the_non_tensor_values() -> None:
    a = torch.zeros(1)
    _, spec = flatten_state((a, "old", 3))
    b = torch.ones(1)
    out: list[Tensor | None] = [None]
    flatten_like(spec, (b, "new", None), out)
    assert out[0] is b


@pytest.mark.parametrize(
    ("reference", "other", "words"),
    [
        ([torch.zeros(1)], [3], "expected a tensor, got int"),
        ([torch.zeros(1)], [None], "expected a tensor, got NoneType"),
        ([torch.zeros(1), torch.ones(1)], [torch.zeros(1)], "expected a sequence of 2 items"),
        ((torch.zeros(1),), torch.zeros(1), "expected a sequence of 1 items"),
        ({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, r"expected a dict with keys \['a'\]"),
        ({"a": torch.zeros(1)}, [torch.zeros(1)], r"expected a dict with keys \['a'\]"),
        (
            {"a": torch.zeros(1), "b": torch.zeros(1)},
            {"b": torch.zeros(1), "a": torch.zeros(1)},
            r"expected a dict with keys \['a', 'b'\]",
        ),
        ({"a": [torch.zeros(1)]}, {"a": ["text"]}, "expected a tensor, got str"),
    ],
)
def test_flatten_like_refuses_a_state_nested_otherwise(
    reference: Any, other: Any, words: str
) -> None:
    _, spec = flatten_state(reference)
    out: list[Tensor | None] = [None] * spec_size(spec)
    with pytest.raises(StateStructureError, match=words):
        flatten_like(spec, other, out)


@pytest.mark.parametrize("other", [{"x": torch.zeros(1), "step": 1}, _Derived(torch.zeros(1))])
def test_flatten_like_refuses_a_state_that_is_not_the_same_dataclass(other: Any) -> None:
    _, spec = flatten_state(_State(torch.zeros(1), 1))
    out: list[Tensor | None] = [None] * spec_size(spec)
    with pytest.raises(StateStructureError, match="expected a _State dataclass, got"):
        flatten_like(spec, other, out)


def test_state_structure_error_is_a_value_error() -> None:
    assert issubclass(StateStructureError, ValueError)


# ---------------------------------------------------------------------------- select_samples


def test_select_samples_reaches_every_tensor() -> None:
    x = torch.arange(12.0).reshape(4, 3)
    state = {
        "x": x,
        "nested": [x, (x, None)],
        "pair": _Pair(x, [x]),
        "dc": _State(x, 7),
        "name": "kept",
    }
    index = torch.tensor([3, 1])
    out = select_samples(state, index)
    expected = x[[3, 1]]
    assert torch.equal(out["x"], expected)
    assert torch.equal(out["nested"][0], expected) and out["nested"][1][1] is None
    assert isinstance(out["pair"], _Pair) and torch.equal(out["pair"].b[0], expected)
    assert isinstance(out["dc"], _State) and out["dc"].step == 7
    assert torch.equal(out["dc"].x, expected)
    assert out["name"] == "kept"


def test_select_samples_takes_the_same_rows_of_tensors_of_any_shape() -> None:
    flat = torch.arange(5)
    table = torch.arange(15).reshape(5, 3)
    images = torch.arange(5 * 2 * 2 * 2).reshape(5, 2, 2, 2)
    index = torch.tensor([4, 0, 4])  # any order, repeats allowed
    out = select_samples([flat, {"t": table}, _Frozen((images,), "x")], index)
    assert out[0].tolist() == [4, 0, 4]
    assert out[1]["t"].tolist() == [[12, 13, 14], [0, 1, 2], [12, 13, 14]]
    picked = out[2].features[0]
    assert picked.shape == (3, 2, 2, 2)
    assert picked[0].flatten().tolist() == list(range(32, 40))
    assert picked[1].flatten().tolist() == list(range(8))
    assert out[2].label == "x"


def test_select_samples_keeps_a_shared_tensor_shared() -> None:
    x = torch.arange(6.0).reshape(3, 2)
    out = select_samples({"a": x, "b": [x]}, torch.tensor([2]))
    assert out["a"] is out["b"][0]
    assert out["a"].tolist() == [[4.0, 5.0]]


def test_select_samples_accepts_int32_positions_and_an_empty_index() -> None:
    x = torch.arange(8).reshape(4, 2)
    assert select_samples(x, torch.tensor([1, 3], dtype=torch.int32)).tolist() == [[2, 3], [6, 7]]
    empty = select_samples([x], torch.tensor([], dtype=torch.int64))[0]
    assert empty.shape == (0, 2)


def test_select_samples_leaves_the_input_state_alone() -> None:
    x = torch.arange(4.0)
    state = _State(x, 1)
    out = select_samples(state, torch.tensor([0]))
    assert out is not state and state.x is x and x.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_select_samples_lets_gradients_reach_the_selected_rows() -> None:
    leaf = torch.zeros(4, 2, requires_grad=True)
    picked = select_samples({"x": leaf}, torch.tensor([1, 3, 3]))["x"]
    picked.sum().backward()
    assert leaf.grad is not None
    assert leaf.grad.tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]


@pytest.mark.parametrize(
    "index", [[0, 1], torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]]), torch.tensor([True])]
)
def test_select_samples_refuses_an_index_that_is_not_positions(index: object) -> None:
    with pytest.raises(TypeError, match="index must be a 1-D int64"):
        select_samples(torch.zeros(3, 2), index)  # type: ignore[arg-type]


def test_select_samples_says_what_index_it_got() -> None:
    with pytest.raises(TypeError, match=r"got a torch\.float32 tensor of shape \(2,\)"):
        select_samples(torch.zeros(3), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"got a torch\.int64 tensor of shape \(1, 2\)"):
        select_samples(torch.zeros(3), torch.tensor([[0, 1]]))
    with pytest.raises(TypeError, match="got list"):
        select_samples(torch.zeros(3), [0])  # type: ignore[arg-type]
