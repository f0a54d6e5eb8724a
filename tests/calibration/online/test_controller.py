"""Tests for adanet.calibration.online.controller: holding a cost or an accuracy-drop target."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from adanet import early_exit
from adanet.calibration import OnlineController, calibrate_for_cost
from adanet.calibration.online import CEILING
from adanet.calibration.online.audit import audit_mask
from replay_network import ReplayNetwork

COSTS = [1.0, 2.0, 3.5, 5.0, 8.0]


def population(n: int, noise: float, seed: int, num_exits: int = 5) -> torch.Tensor:
    """``[exits, n, 10]`` logits converging on each sample's own pattern: later exits are less
    noisy, so they agree more with the last one; more ``noise`` makes harder samples."""
    generator = torch.Generator().manual_seed(seed)
    pattern = torch.randn(n, 10, generator=generator) * 2.5
    exits = []
    for k in range(num_exits):
        share = (num_exits - 1 - k) / (num_exits - 1)
        exits.append(pattern + noise * share * torch.randn(n, 10, generator=generator))
    return torch.stack(exits)


def shifted(block: int, blocks: int, seed: int) -> torch.Tensor:
    """Easy and hard blocks in turn, easy first."""
    parts = [population(block, 1.0 if b % 2 == 0 else 3.0, seed + b) for b in range(blocks)]
    return torch.cat(parts, dim=1)


def calibration(seed: int = 100) -> torch.Tensor:
    return torch.cat([population(600, 1.0, seed), population(600, 3.0, seed + 1)], dim=1)


def run(controller: Any, stream: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat(
        [controller.simulate(stream[:, i : i + batch]) for i in range(0, stream.shape[1], batch)]
    )


def window_means(values: torch.Tensor, window: int) -> list[float]:
    return values[: values.numel() // window * window].view(-1, window).mean(dim=1).tolist()


# ----------------------------------------------------------------------------- cost mode


@pytest.mark.parametrize(("seed", "batch"), [(0, 1), (1, 16), (2, 64)])
def test_cost_mode_holds_the_target_where_static_thresholds_do_not(seed: int, batch: int) -> None:
    cal, stream = calibration(seed), shifted(800, 6, seed)
    target = 3.5
    costs = torch.tensor(COSTS, dtype=torch.float64)
    static = costs[calibrate_for_cost(cal, COSTS, target).simulate(stream)]
    controlled = costs[run(OnlineController(cal, COSTS, target_cost=target), stream, batch)]
    static_windows = [w / target for w in window_means(static, 400)]
    windows = [w / target for w in window_means(controlled, 400)]
    # The shift is real: calibrated thresholds spend far apart on easy and hard blocks ...
    assert max(static_windows) - min(static_windows) > 0.4
    # ... and the controller holds the target, past the first window after each switch.
    settled = windows[1::2]
    assert all(abs(w - 1) < 0.08 for w in settled), settled
    assert abs(float(controlled.mean()) / target - 1) < 0.03


def test_cost_mode_reaches_the_target_from_any_calibration_mismatch() -> None:
    # Calibrated on easy images only: at first it spends too much on the mixed stream.
    cal = population(800, 1.0, seed=7)
    stream = torch.cat([population(1500, 3.0, seed=8)], dim=1)
    controller = OnlineController(cal, COSTS, target_cost=3.0, update_every=16)
    spent = torch.tensor(COSTS, dtype=torch.float64)[run(controller, stream, 8)]
    assert abs(float(spent[-500:].mean()) / 3.0 - 1) < 0.05


# ----------------------------------------------------------------------------- accuracy mode


@pytest.mark.parametrize("seed", [0, 1])
def test_accuracy_mode_holds_the_drop_and_saves_cost(seed: int) -> None:
    cal, stream = calibration(seed), shifted(1000, 4, seed)
    eps = 0.05
    controller = OnlineController(cal, COSTS, max_accuracy_drop=eps, audit_share=0.05)
    exits = run(controller, stream, 32)
    rows = torch.arange(stream.shape[1])
    disagree = (stream[exits, rows].argmax(1) != stream[-1].argmax(1)).double()
    windows = window_means(disagree, 500)
    assert float(disagree.mean()) <= eps + 0.005
    assert all(w <= eps + 0.03 for w in windows[1::2]), windows
    cost = torch.tensor(COSTS, dtype=torch.float64)[exits]
    assert float(cost.mean()) < 0.8 * COSTS[-1]
    # Audited images (5%) went to the last exit whatever their confidence.
    audited = audit_mask(0, stream.shape[1], 0.05, 0)
    assert bool((exits[audited] == 4).all()) and 0.04 < float(audited.double().mean()) < 0.06
    assert controller.stats()["audits"] == int(audited.sum())


def test_accuracy_mode_target_orders_the_cost() -> None:
    cal, stream = calibration(3), shifted(500, 4, 3)
    spent = []
    for eps in (0.02, 0.08, 0.2):
        exits = run(OnlineController(cal, COSTS, max_accuracy_drop=eps), stream, 32)
        spent.append(float(torch.tensor(COSTS)[exits].mean()))
    assert spent[0] > spent[1] > spent[2]


# ----------------------------------------------------------------------------- replay = real


@pytest.mark.parametrize(
    "settings",
    [
        {"target_cost": 3.0},
        {"target_cost": 2.0, "measure": "entropy", "temperatures": [1.5, 1.0, 0.8, 1.2, 1.0]},
        {"max_accuracy_drop": 0.05, "audit_share": 0.2},
        {"max_accuracy_drop": 0.1, "audit_share": 0.1, "measure": "margin", "update_every": 5},
        {"target_cost": 4.0, "audit_share": 0.3},
    ],
)
def test_simulate_equals_early_exit_then_observe(settings: dict[str, Any]) -> None:
    cal, stream = calibration(5), shifted(150, 4, 5)
    network = ReplayNetwork(stream, COSTS).eval()
    real = OnlineController(cal, COSTS, **settings)
    replay = OnlineController(cal, COSTS, **settings)
    start = 0
    for size in [1, 1, 7, 32, 64, 3, 100, 1, 50, 128, 13, 200]:
        images = network.images(range(start, start + size))
        result = early_exit(network, images, real)
        real.observe(result)
        assert torch.equal(result.exit_index, replay.simulate(stream[:, start : start + size]))
        start += size
    assert real.to_dict() == replay.to_dict()
    assert real.command != OnlineController(cal, COSTS, **settings).command  # it learned


def test_simulate_with_audits_charges_them_the_last_exit() -> None:
    cal, stream = calibration(6), population(400, 1.0, seed=6)
    controller = OnlineController(cal, COSTS, target_cost=1.0, audit_share=0.25)
    exits = controller.simulate(stream)
    audited = audit_mask(0, 400, 0.25, 0)
    assert bool((exits[audited] == 4).all())
    assert controller.stats()["mean_cost"] == pytest.approx(
        float(torch.tensor(COSTS, dtype=torch.float64)[exits].mean())
    )


# ----------------------------------------------------------------------------- restarts


@pytest.mark.parametrize("settings", [{"target_cost": 3.0}, {"max_accuracy_drop": 0.05}])
def test_state_round_trips_through_json_and_continues_identically(
    settings: dict[str, Any],
) -> None:
    cal, stream = calibration(8), shifted(300, 4, 8)
    first = OnlineController(cal, COSTS, temperatures=[1.2, 1.0, 1.0, 0.9, 1.0], **settings)
    run(first, stream[:, :517], 23)  # stop mid-way, with images pending an update
    restored = OnlineController.from_dict(json.loads(json.dumps(first.to_dict())))
    assert restored.to_dict() == first.to_dict()
    assert restored.thresholds == first.thresholds and restored.images_seen == 517
    rest = stream[:, 517:]
    assert torch.equal(run(first, rest, 23), run(restored, rest, 23))
    assert restored.to_dict() == first.to_dict()


def test_malformed_mappings_are_refused() -> None:
    good = OnlineController(calibration(9), COSTS, target_cost=3.0).to_dict()
    with pytest.raises(ValueError, match="format"):
        OnlineController.from_dict({**good, "format": "other"})
    with pytest.raises(ValueError, match="command"):
        OnlineController.from_dict({**good, "state": {**good["state"], "command": math.nan}})
    with pytest.raises(ValueError, match="malformed"):
        OnlineController.from_dict({**good, "state": {"command": 1.0}})
    with pytest.raises(ValueError, match="finite"):
        bad_family = {**good["family"], "cost": [math.inf] * len(good["family"]["cost"])}
        OnlineController.from_dict({**good, "family": bad_family})


# ----------------------------------------------------------------------------- degenerate


def _bounded(controller: OnlineController) -> None:
    data = controller.to_dict()
    low, high = min(data["family"]["cost"]), max(data["family"]["cost"])
    if controller.mode == "accuracy":
        low, high = 0.0, max(data["family"]["drop"])
    assert low <= controller.command <= high
    assert all(0.0 <= t <= CEILING for t in controller.thresholds[:-1])
    json.dumps(data, allow_nan=False)  # every learned value is finite


@pytest.mark.parametrize("settings", [{"target_cost": 3.0}, {"max_accuracy_drop": 0.05}])
def test_nan_and_constant_streams_keep_the_controller_bounded(settings: dict[str, Any]) -> None:
    cal = calibration(10)
    controller = OnlineController(cal, COSTS, **settings)
    nan = torch.full((5, 2000, 10), math.nan)
    exits = run(controller, nan, 16)
    assert bool((exits == 4).all())  # NaN images are never confident
    _bounded(controller)
    constant = torch.zeros(5, 3000, 10)  # every image equally (un)confident at every exit
    run(controller, constant, 16)
    _bounded(controller)
    # After both, a normal stream is served as before.
    normal = shifted(600, 2, 11)
    exits = run(controller, normal, 16)
    _bounded(controller)
    if "target_cost" in settings:
        cost = torch.tensor(COSTS, dtype=torch.float64)[exits]
        assert abs(float(cost[-600:].mean()) / 3.0 - 1) < 0.1


def test_on_a_constant_stream_it_alternates_between_the_ends() -> None:
    # Images all equally unconfident leave together at the first exit only when the threshold
    # is 0, the table's cheapest end; the command hits the end and bounces: every batch costs
    # either costs[0] or costs[-1], never anything unbounded.
    controller = OnlineController(calibration(12), COSTS, target_cost=3.0)
    exits = run(controller, torch.zeros(5, 640, 10), 32)
    assert set(exits.tolist()) == {0, 4}
    _bounded(controller)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({}, ValueError, "exactly one"),
        ({"target_cost": 3.0, "max_accuracy_drop": 0.1}, ValueError, "exactly one"),
        ({"target_cost": 0.5}, ValueError, "below costs"),
        ({"target_cost": "3"}, TypeError, "target_cost"),
        ({"max_accuracy_drop": 1.5}, ValueError, "max_accuracy_drop"),
        ({"target_cost": 3.0, "audit_share": 1.0}, ValueError, "audit_share"),
        ({"target_cost": 3.0, "gain": 0.0}, ValueError, "gain"),
        ({"target_cost": 3.0, "update_every": 0}, ValueError, "update_every"),
        ({"target_cost": 3.0, "measure": "patience"}, ValueError, "measure"),
        ({"target_cost": 3.0, "family_size": 1}, ValueError, "family_size"),
    ],
)
def test_bad_settings_are_refused(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        OnlineController(calibration(13), COSTS, **settings)


def test_bad_logits_and_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="2\\+ exits"):
        OnlineController(torch.randn(1, 10, 3), [1.0], target_cost=1.0)
    with pytest.raises(ValueError, match="cumulative"):
        OnlineController(calibration(14), [1.0, 3.0, 2.0, 4.0, 5.0], target_cost=3.0)
    controller = OnlineController(calibration(14), COSTS, target_cost=3.0)
    with pytest.raises(ValueError, match="exits"):
        controller.simulate(torch.randn(4, 8, 10))
    with pytest.raises(ValueError, match="classes"):
        controller.simulate(torch.randn(5, 8, 7))


def test_observe_refuses_what_it_cannot_match() -> None:
    cal, stream = calibration(15), population(64, 2.0, seed=15)
    network = ReplayNetwork(stream, COSTS).eval()
    controller = OnlineController(cal, COSTS, max_accuracy_drop=0.05, audit_share=0.5)
    with pytest.raises(TypeError, match="EarlyExitResult"):
        controller.observe(torch.zeros(3))
    result = early_exit(network, network.images(range(32)), controller)
    half = type(result)(result.logits[:16], result.exit_index[:16], result.cost[:16])
    with pytest.raises(ValueError, match="decided last"):
        controller.observe(half)
    bad = type(result)(result.logits, result.exit_index + 10, result.cost)
    with pytest.raises(ValueError, match="outside"):
        controller.observe(bad)
    controller.observe(result)
    assert controller.images_seen == 32


def test_a_per_batch_budget_can_force_audited_images_out() -> None:
    cal, stream = calibration(16), population(64, 3.0, seed=16)
    network = ReplayNetwork(stream, COSTS).eval()
    controller = OnlineController(cal, COSTS, max_accuracy_drop=0.05, audit_share=0.5)
    result = early_exit(network, network.images(range(64)), controller, budget=64 * 1.5)
    assert float(result.cost.sum()) <= 64 * 1.5
    controller.observe(result)  # the forced-out audits are not booked as audits
    assert controller.stats()["audits"] == int((result.exit_index == 4).sum())
