"""Tests for adanet.cli.report: confidence intervals, timings and the run's report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adanet import EarlyExitPolicy, RANet, RANetConfig
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
    write_run_report,
)
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


def test_render_report_tables_and_calibration_statement() -> None:
    metrics = add_confidence_intervals(_metrics())
    walls = WallTimes(
        early_exit=1e-3, all_exits=3e-3, last_exit_only=2e-3, num_images=512, batch_size=64, p=1.0
    )
    text = render_report(metrics, config={"num_blocks": 1}, wall_times=walls)
    assert "calibrated on the **validation** split (600 images), never on the test split" in text
    assert "| 0 | 1.000 | 25.0% | 80.00% | 77.41–82.36 | 97.00% |" in text
    assert "| 1.00 | 2.200 | 55.0% | 94.50% |" in text
    assert "p = 1.00, top-1 94.50% at 55.0% of the last exit's MACs" in text
    assert "![Anytime prediction](anytime.png)" in text
    assert "![Budgeted batch classification](budgeted.png)" in text
    assert "| real early exit (p = 1.00) | 1.000 | 0.50× |" in text
    assert "| all exits (`model(x)`) | 3.000 | 1.50× |" in text
    assert "| last exit only (static) | 2.000 | 1.00× |" in text
    assert '`{"num_blocks": 1}`' in text
    assert "Wilson" in text


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
    policy = EarlyExitPolicy([0.5] * (model.num_exits - 1) + [0.0])
    walls = measure_wall_times(model, loader, policy, p=0.7, max_images=20)
    assert model.training  # restored
    model.eval()
    assert walls.num_images == 32  # whole batches of 16 until at least 20 images
    assert walls.batch_size == 16 and walls.p == 0.7
    assert min(walls.early_exit, walls.all_exits, walls.last_exit_only) > 0
    assert measure_wall_times(model, loader, policy).num_images == 40
    with pytest.raises(ValueError, match="max_images"):
        measure_wall_times(model, loader, policy, max_images=0)
    with pytest.raises(ValueError, match="no images"):
        measure_wall_times(model, [], policy)


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
        model, loader, tmp_path, metrics, say=lambda *parts, **_: lines.append(str(parts[0]))
    )
    assert report == tmp_path / "report.md"
    text = report.read_text(encoding="utf-8")
    assert "## Wall time per image" in text and "never on the test split" in text
    stored = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert stored["ci_method"] == CI_METHOD
    assert all("ci95" in row for row in stored["anytime"] + stored["budgeted"])
    assert stored["wall_time"]["num_images"] == 40
    assert len(stored["budgeted"]) == 3
    for name in ("anytime.png", "budgeted.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert any("wall time per image" in line for line in lines)
    assert not list(tmp_path.glob(".*.tmp"))
