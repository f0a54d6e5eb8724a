"""Tests for adanet.cli.report_text: confidence intervals and the markdown of report.md."""

from __future__ import annotations

from typing import Any

import pytest

from adanet.cli.plots import wilson_interval
from adanet.cli.report_text import (
    CI_METHOD,
    add_confidence_intervals,
    cheapest_within,
    render_report,
)
from adanet.cli.wall_times import BudgetTime, PathTimes, WallTimes


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
