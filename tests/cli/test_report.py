"""Tests for adanet.cli.report: confidence intervals, timings and the run's report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adanet import EarlyExitNetwork, EarlyExitPolicy, RANet, RANetConfig, measure_exit_costs
from adanet.cli import evaluate_run
from adanet.cli.plots import wilson_interval
from adanet.cli.policy_runs import PolicyOptions
from adanet.cli.report import (
    CI_METHOD,
    WallTimes,
    add_confidence_intervals,
    cheapest_within,
    measure_wall_times,
    render_report,
    timing_networks,
    write_run_report,
)
from adanet.cli.wall_times import BudgetTime, PathTimes, static_run_macs
from adanet.data import DataLoaders


@pytest.fixture(scope="module")
def model_and_loader() -> tuple[RANet, DataLoader[Any]]:
    torch.manual_seed(0)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4)).eval()
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 4, (40,))
    return model, DataLoader(TensorDataset(x, y), batch_size=16)


def _metrics() -> dict[str, Any]:
    """Hand-made metrics of a three-exit model on 1,000 test images."""
    return {
        "arch": "RANet",
        "data": "digits-affine",
        "num_test": 1000,
        "num_calibration": 600,
        "calibration_split": "validation",
        "cost_convention": "actual",
        "anytime": [
            {"exit": 0, "macs": 1e6, "top1": 0.80, "top5": 0.97},
            {"exit": 1, "macs": 2e6, "top1": 0.90, "top5": 0.99},
            {"exit": 2, "macs": 4e6, "top1": 0.95, "top5": 1.0},
        ],
        "budgeted": [
            {"p": 0.5, "mean_macs": 1.5e6, "accuracy": 0.88, "seconds_per_image": 1e-3,
             "exit_fractions": [0.6, 0.3, 0.1]},
            {"p": 1.0, "mean_macs": 2.2e6, "accuracy": 0.945, "seconds_per_image": 2e-3,
             "exit_fractions": [0.4, 0.3, 0.3]},
            {"p": 1.5, "mean_macs": 3.0e6, "accuracy": 0.951, "seconds_per_image": 3e-3,
             "exit_fractions": [0.2, 0.3, 0.5]},
        ],
    }  # fmt: skip


def test_add_confidence_intervals_uses_wilson_over_the_test_images() -> None:
    metrics = add_confidence_intervals(_metrics())
    assert metrics["ci_method"] == CI_METHOD
    assert metrics["anytime"][0]["ci95"] == list(wilson_interval(0.80, 1000))
    assert metrics["budgeted"][1]["ci95"] == list(wilson_interval(0.945, 1000))
    # For 80% of 1,000 images the interval is about ±2.5 points.
    low, high = metrics["anytime"][0]["ci95"]
    assert low == pytest.approx(0.7741, abs=1e-3) and high == pytest.approx(0.8236, abs=1e-3)
    with pytest.raises(ValueError, match="num_test"):
        add_confidence_intervals({"anytime": []})


def test_cheapest_within_one_point() -> None:
    metrics = _metrics()
    best = cheapest_within(metrics)
    assert best is not None and best["p"] == 1.0  # 94.5% >= 95% - 1 point, at 2.2 MMACs
    assert cheapest_within(metrics, gap=0.001) is not None
    assert cheapest_within(metrics, gap=0.001)["p"] == 1.5  # type: ignore[index]
    metrics["budgeted"] = [metrics["budgeted"][0]]
    assert cheapest_within(metrics) is None
    assert cheapest_within({"anytime": []}) is None


def _walls() -> WallTimes:
    def path(name: str, last: float, ratios: tuple[float, float, float]) -> PathTimes:
        points = tuple(
            BudgetTime(p, macs, 2 * macs, ratio, ratio * last)
            for p, macs, ratio in zip((0.5, 1.0, 1.5), (0.35, 0.55, 0.75), ratios, strict=True)
        )
        return PathTimes(name, last, 1.5 * last, 2e6, points)

    return WallTimes(
        paths=(path("eager", 2.0, (0.5, 0.7, 0.9)), path("optimized", 1.0, (0.45, 0.6, 0.8))),
        p=1.0,
        num_images=512,
        batch_size=64,
        warmup_batches=2,
        buckets="half-octave",
        threads=2,
        isa="AVX512",
    )


def test_render_report_tables_and_calibration_statement() -> None:
    metrics = add_confidence_intervals(_metrics())
    text = render_report(metrics, config={"num_blocks": 1}, wall_times=_walls())
    assert "calibrated on the **validation** split (600 images), never on the test split" in text
    assert "| 0 | 1.000 | 25.0% | 80.00% | 77.41–82.36 | 97.00% |" in text
    assert "| 1.00 | 2.200 | 55.0% | 94.50% |" in text
    assert "p = 1.00, top-1 94.50% at 55.0% of the last exit's MACs" in text
    assert "![Anytime prediction](anytime.png)" in text
    assert "![Budgeted batch classification](budgeted.png)" in text
    assert '`{"num_blocks": 1}`' in text
    assert "Wilson" in text
    # The wall-time section: one row per way at the report's point, one per budget point.
    assert "512 test images in batches of 64, after 2 warm-up batches" in text
    assert "| eager | 2.000 | 3.000 | 1.400 | 0.70 | 0.55 | 1.10 |" in text
    assert "| optimized | 1.000 | 1.500 | 0.600 | 0.60 | 0.55 | 1.10 |" in text
    assert "Fastest early exit at p = 1.00: **optimized**" in text
    assert "| 0.50 | 0.35 | 0.50 (0.70) | 0.45 (0.70) | +0.10 | -0.25 |" in text
    assert "| 1.50 | 0.75 | 0.90 (1.50) | 0.80 (1.50) | +0.05 | -0.70 |" in text
    assert "![Wall time against MACs](wall_time.png)" in text


def test_render_report_warns_when_calibrated_on_test() -> None:
    metrics = _metrics()
    metrics["calibration_split"] = "test"
    text = render_report(metrics)
    assert "**Warning:**" in text and "calibrated on the **test** split" in text
    assert "never on the test split" not in text
    assert "n/a" in text  # no intervals were added
    with pytest.raises(ValueError, match="no 'anytime' rows"):
        render_report({"anytime": []})


def test_measure_wall_times(model_and_loader: tuple[RANet, Any]) -> None:
    model, loader = model_and_loader
    model.train()
    costs = [float(k + 1) for k in range(model.num_exits)]
    policies = {
        0.5: EarlyExitPolicy([0.0] * model.num_exits),  # everybody leaves at exit 0
        1.5: EarlyExitPolicy([float("inf")] * model.num_exits),  # nobody leaves early
    }
    walls = measure_wall_times(
        {"eager": model}, loader, policies, costs=costs, p=0.7, max_images=4, warmup_batches=1
    )
    assert model.training  # restored
    model.eval()
    assert walls.num_images == 16  # one warm-up batch, then whole batches of 16
    assert walls.batch_size == 16 and walls.p == 0.7 and walls.warmup_batches == 1
    (path,) = walls.paths
    assert path.name == "eager" and min(path.last_exit_ms, path.all_exits_ms) > 0
    first, never = path.points
    assert first.macs_ratio == pytest.approx(costs[0] / costs[-1]) and never.macs_ratio == 1.0
    assert path.static_macs == costs[-1] and first.static_macs_ratio == first.macs_ratio
    static = measure_wall_times(
        {"eager": model}, loader, policies, costs=costs, p=0.7, static_macs={"eager": 2.0}
    )
    assert static.paths[0].points[0].static_macs_ratio == pytest.approx(costs[0] / 2.0)
    assert first.time_ratio > 0 and first.ms_per_image > 0
    assert path.at(0.7) is first and walls.recommended is path
    # 40 images: two warm-up batches of 16 leave the last 8 to time.
    assert measure_wall_times({"eager": model}, loader, policies, costs=costs, p=1).num_images == 8
    with pytest.raises(ValueError, match="max_images"):
        measure_wall_times({"eager": model}, loader, policies, costs=costs, p=1, max_images=0)
    with pytest.raises(ValueError, match="no test batch was left to time"):
        measure_wall_times({"eager": model}, [], policies, costs=costs, p=1)
    with pytest.raises(ValueError, match="at least one network"):
        measure_wall_times({}, loader, policies, costs=costs, p=1)


def test_write_run_report_completes_the_run_folder(
    tmp_path: Path, model_and_loader: tuple[RANet, Any]
) -> None:
    pytest.importorskip("matplotlib")
    model, loader = model_and_loader
    loaders = DataLoaders(train=loader, val=loader, test=loader)
    metrics = evaluate_run(
        model, loaders, (3, 32, 32), tmp_path, info={"arch": "RANet"}, say=lambda *a, **k: None,
        options=PolicyOptions(budget_stride=13),
    )  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps({"config": {"num_blocks": 1}}))
    lines: list[str] = []
    report = write_run_report(
        model,
        loader,
        tmp_path,
        metrics,
        onnx=False,
        say=lambda *parts, **_: lines.append(str(parts[0])),
    )
    assert report == tmp_path / "report.md"
    assert not model.training  # every timing and count left the model in eval mode
    text = report.read_text(encoding="utf-8")
    assert "## Wall time per image" in text and "never on the test split" in text
    stored = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert stored["ci_method"] == CI_METHOD
    assert all("ci95" in row for row in stored["anytime"] + stored["budgeted"])
    # Two warm-up batches of 16, then the last 8 images timed, every budget point on both ways.
    assert stored["wall_time"]["num_images"] == 8
    assert [path["name"] for path in stored["wall_time"]["paths"]] == ["eager", "optimized"]
    assert stored["wall_time"]["recommended"] in ("eager", "optimized")
    assert len(stored["budgeted"]) == 3
    assert all(len(path["points"]) == 3 for path in stored["wall_time"]["paths"])
    for name in ("anytime.png", "budgeted.png", "wall_time.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert any("wall time per image" in line for line in lines)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_timing_networks_include_onnx_runtime_where_installed(
    model_and_loader: tuple[RANet, Any],
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, loader = model_and_loader
    networks = timing_networks(model, (3, 32, 32), onnx=True, say=lambda *a, **k: None)
    assert list(networks) == ["eager", "optimized", "ONNX Runtime"]
    x = next(iter(loader))[0]
    with torch.no_grad():
        expected = model(x)[-1]
    for network in networks.values():  # the same network three ways
        torch.testing.assert_close(network(x)[-1], expected, rtol=1e-4, atol=1e-4)
    assert list(timing_networks(model, (3, 32, 32), onnx=False)) == ["eager", "optimized"]


class _HeadAlone(EarlyExitNetwork):
    """One exit head as a one-exit network on a fixed feature map, to count the head alone."""

    def __init__(self, head: torch.nn.Module, feature: torch.Tensor) -> None:
        super().__init__()
        self.feature = feature
        self.in_channels = 3
        self.exits = torch.nn.ModuleList([head])

    def begin(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature

    def advance(self, state: torch.Tensor, exit_index: int) -> tuple[torch.Tensor, Any]:
        return state, state


def test_static_run_macs_leave_out_every_earlier_head(model_and_loader: tuple[RANet, Any]) -> None:
    model, _ = model_and_loader
    costs = [c.macs for c in measure_exit_costs(model, 32)]
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 32, 32))
    heads = [
        measure_exit_costs(_HeadAlone(head, feature), 32)[0].macs
        for head, feature in zip(model.exits, features, strict=True)
    ]
    assert all(cost > 0 for cost in heads)
    static = static_run_macs(model, (3, 32, 32))
    assert static == pytest.approx(costs[-1] - sum(heads[:-1]))
    assert not model.training  # left in the mode it was in
    model.train()
    try:
        assert static_run_macs(model, (3, 32, 32)) == static and model.training
    finally:
        model.eval()
