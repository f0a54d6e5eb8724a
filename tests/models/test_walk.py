"""Tests of ``adanet.models.walk.ExitWalk`` over a tiny hand-written network with ``begin`` and
``advance`` (not an ``EarlyExitNetwork``): the walk starts the network once, goes through the
exits in order, knows when it is done, shrinks the batch with ``keep``, runs the head of the
exit just reached, yields the remaining features, and refuses to go past the last exit."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from adanet.models.walk import ExitWalk


class _AddHead(nn.Module):
    """A head that adds a constant, so the logits tell which exit's head ran."""

    def __init__(self, constant: float) -> None:
        super().__init__()
        self.constant = constant

    def forward(self, feature: Tensor) -> Tensor:
        return feature + self.constant


class _Counting(nn.Module):
    """Exit ``i`` adds ``i + 1`` to the running state; every call is logged.

    The state is a dict with the running tensor and how many exits it went through, so a
    non-tensor value travels with it too.
    """

    def __init__(self, num_exits: int) -> None:
        super().__init__()
        self.exits = nn.ModuleList(_AddHead(100.0 * (i + 1)) for i in range(num_exits))
        self.calls: list[Any] = []

    def begin(self, x: Tensor) -> Any:
        self.calls.append("begin")
        return {"value": x, "passed": 0}

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        self.calls.append(exit_index)
        value = state["value"] + (exit_index + 1)
        return value * 10, {"value": value, "passed": state["passed"] + 1}


def _images() -> Tensor:
    return torch.arange(4.0).reshape(4, 1, 1, 1)  # sample k holds the value k


def test_a_new_walk_has_begun_and_stands_before_exit_zero() -> None:
    network = _Counting(3)
    x = _images()
    walk = ExitWalk(network, x)
    assert network.calls == ["begin"]
    assert walk.network is network
    assert walk.state["value"] is x and walk.state["passed"] == 0
    assert walk.next_exit == 0 and walk.num_exits == 3 and not walk.done


def test_advance_goes_through_the_exits_in_order() -> None:
    network = _Counting(3)
    walk = ExitWalk(network, _images())
    features = []
    for expected_next in (1, 2, 3):
        features.append(walk.advance())
        assert walk.next_exit == expected_next
    assert network.calls == ["begin", 0, 1, 2]
    # The state after exit i holds x + 1 + ... + (i + 1); the feature is ten times that.
    assert [f.flatten().tolist() for f in features] == [
        [10.0, 20.0, 30.0, 40.0],
        [30.0, 40.0, 50.0, 60.0],
        [60.0, 70.0, 80.0, 90.0],
    ]
    assert walk.state["value"].flatten().tolist() == [6.0, 7.0, 8.0, 9.0]
    assert walk.state["passed"] == 3
    assert walk.done


def test_done_only_after_the_last_exit() -> None:
    walk = ExitWalk(_Counting(2), _images())
    assert not walk.done
    walk.advance()
    assert not walk.done
    walk.advance()
    assert walk.done


def test_advancing_past_the_last_exit_is_an_index_error_and_runs_nothing() -> None:
    network = _Counting(2)
    walk = ExitWalk(network, _images())
    walk.advance()
    walk.advance()
    with pytest.raises(IndexError, match="already reached the last of 2 exits"):
        walk.advance()
    assert network.calls == ["begin", 0, 1] and walk.next_exit == 2


def test_a_network_without_exits_is_done_at_once() -> None:
    walk = ExitWalk(_Counting(0), _images())
    assert walk.num_exits == 0 and walk.done
    assert list(walk.features()) == []
    with pytest.raises(IndexError, match="last of 0 exits"):
        walk.advance()


def test_head_runs_the_head_of_the_exit_just_reached() -> None:
    walk = ExitWalk(_Counting(3), _images())
    first = walk.advance()
    assert walk.head(first).flatten().tolist() == [110.0, 120.0, 130.0, 140.0]
    second = walk.advance()
    assert walk.head(second).flatten().tolist() == [230.0, 240.0, 250.0, 260.0]
    # head() reads the feature it is given, not the state.
    assert walk.head(torch.zeros(1)).tolist() == [200.0]


def test_keep_shrinks_the_batch_for_the_exits_that_follow() -> None:
    network = _Counting(3)
    walk = ExitWalk(network, _images())
    walk.advance()
    walk.keep(torch.tensor([3, 1]))
    assert walk.state["value"].flatten().tolist() == [4.0, 2.0]
    assert walk.state["passed"] == 1  # the non-tensor part is carried as it is
    assert walk.next_exit == 1  # keeping samples does not move the walk
    feature = walk.advance()
    assert feature.shape == (2, 1, 1, 1)
    assert feature.flatten().tolist() == [60.0, 40.0]  # samples 3 and 1: (k + 1 + 2) * 10
    walk.keep(torch.tensor([1]))
    assert walk.advance().flatten().tolist() == [70.0]  # sample 1: (1 + 1 + 2 + 3) * 10
    assert network.calls == ["begin", 0, 1, 2]


def test_keep_refuses_an_index_that_is_not_positions() -> None:
    walk = ExitWalk(_Counting(2), _images())
    with pytest.raises(TypeError, match="index must be a 1-D int64"):
        walk.keep(torch.tensor([0.0, 1.0]))


def test_features_yields_every_remaining_exit_in_order() -> None:
    network = _Counting(4)
    walk = ExitWalk(network, _images())
    walk.advance()
    remaining = list(walk.features())
    assert len(remaining) == 3
    # x + (1 + 2), x + (1 + 2 + 3), x + (1 + 2 + 3 + 4), times ten, for sample 0.
    assert [float(f[0]) for f in remaining] == [30.0, 60.0, 100.0]
    assert walk.done and network.calls == ["begin", 0, 1, 2, 3]
    assert list(walk.features()) == []


def test_features_is_lazy_and_lets_the_caller_keep_samples_between_exits() -> None:
    network = _Counting(3)
    walk = ExitWalk(network, _images())
    sizes = []
    for feature in walk.features():
        sizes.append(feature.shape[0])
        walk.keep(torch.arange(feature.shape[0] - 1))  # drop the last sample each time
    assert sizes == [4, 3, 2]
    assert walk.state["value"].shape[0] == 1


def test_head_before_the_first_exit_is_an_error() -> None:
    walk = ExitWalk(_Counting(3), _images())
    with pytest.raises(IndexError, match="call advance"):
        walk.head(torch.zeros(4, 1, 1, 1))
