"""``shifted_stream`` and ``evaluate_stream``: methods side by side on a shifting stream."""

from __future__ import annotations

import json
import math

import pytest
import torch

from adanet.calibration import OnlineController, calibrate_for_cost
from adanet.measure import PerBatchBudget, evaluate_stream, shifted_stream
from adanet.policies import exit_confidences
from synthetic_logits import make_logits

COSTS = [1.0, 2.0, 4.0, 7.0]


def test_blocks_alternate_between_the_two_halves() -> None:
    score = torch.arange(100, dtype=torch.float64)  # 50..99 are the easy half
    order = shifted_stream(score, block_size=30, num_blocks=5, seed=3)
    assert order.index.shape == (150,) and order.switches == (30, 60, 90, 120)
    blocks = order.index.view(5, 30)
    for b in range(5):
        easy = b % 2 == 0
        assert bool((blocks[b] >= 50).all()) == easy and bool((blocks[b] < 50).all()) != easy
        assert bool((order.hard.view(5, 30)[b] != easy).all())
    # A half is drawn without replacement before it is reshuffled: 90 easy draws from 50.
    easy_draws = torch.cat([blocks[0], blocks[2], blocks[4]])
    assert len(set(easy_draws[:50].tolist())) == 50
    hard_first = shifted_stream(score, block_size=10, num_blocks=2, start_easy=False)
    assert bool((hard_first.index[:10] < 50).all())


def test_bad_streams_are_refused() -> None:
    with pytest.raises(ValueError, match="1-D"):
        shifted_stream(torch.zeros(1))
    with pytest.raises(ValueError, match="block_size"):
        shifted_stream(torch.zeros(10), block_size=0)


def _stream() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, ...]]:
    pool = make_logits(4, 1000, seed=1)
    order = shifted_stream(exit_confidences(pool[0], "max_prob"), block_size=200, num_blocks=4)
    targets = pool[-1].argmax(1)  # labels the last exit always gets right
    return make_logits(4, 600, seed=2), pool[:, order.index], targets[order.index], order.switches


def test_every_method_is_reported_per_window() -> None:
    cal, stream, targets, switches = _stream()
    static = calibrate_for_cost(cal, COSTS, 3.0)
    controller = OnlineController(cal, COSTS, target_cost=3.0)
    twin = OnlineController.from_dict(controller.to_dict())
    result = evaluate_stream(
        stream,
        COSTS,
        {"static": static, "online": controller, "budget": PerBatchBudget(static, 3.0)},
        targets=targets,
        batch_size=16,
        window=100,
        switches=switches,
        target_cost=3.0,
    )
    assert list(result.runs) == ["static", "online", "budget"]
    costs = torch.tensor(COSTS, dtype=torch.float64)
    expected = costs[static.simulate(stream)].view(8, 100).mean(1).tolist()
    assert [w.mean_cost for w in result.runs["static"].windows] == pytest.approx(expected)
    # The controller learned batch by batch, as simulate on 16-image batches does.
    replay = torch.cat([twin.simulate(stream[:, i : i + 16]) for i in range(0, 800, 16)])
    assert torch.equal(result.runs["online"].exit_index, replay)
    assert controller.to_dict() == twin.to_dict()
    # A hard budget per batch: no batch spends more than 16 images at the target.
    assert max(result.runs["budget"].batch_cost) <= 16 * 3.0
    windows = result.runs["static"].windows
    assert [w.settled for w in windows] == [False, True, False, True, False, True, False, True]
    # The last exit is right on every image here, so the drop is 1 - accuracy.
    assert result.last_exit_accuracy == 1.0
    assert all(w.accuracy_drop == pytest.approx(1 - w.accuracy) for w in windows)
    summary = result.runs["online"].summary
    assert summary["mean_cost_ratio"] == pytest.approx(summary["mean_cost"] / 3.0)
    assert summary["max_settled_window_ratio"] <= summary["max_window_ratio"]
    json.dumps(result.to_dict(), allow_nan=False)


def test_without_targets_only_disagreement_is_reported() -> None:
    _, stream, _, _ = _stream()
    policy = calibrate_for_cost(make_logits(4, 300, seed=5), COSTS, 2.0)
    result = evaluate_stream(stream, COSTS, {"static": policy}, window=400)
    window = result.runs["static"].windows[0]
    assert math.isnan(window.accuracy) and 0.0 <= window.disagreement <= 1.0
    assert math.isnan(result.last_exit_accuracy)
    assert "mean_cost_ratio" not in result.runs["static"].summary


def test_bad_methods_and_arguments_are_refused() -> None:
    _, stream, _, _ = _stream()
    with pytest.raises(TypeError, match="ExitDecider"):
        evaluate_stream(stream, COSTS, {"none": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="window"):
        evaluate_stream(stream, COSTS, {}, window=0)
    with pytest.raises(ValueError, match="entries"):
        evaluate_stream(stream, COSTS[:3], {})
