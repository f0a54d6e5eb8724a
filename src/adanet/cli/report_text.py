"""The markdown of a run's ``report.md``: the run table, the anytime and budgeted tables with
their confidence intervals, and the wall-time section (:func:`wall_time_lines`).

:func:`render_report` is pure: text from a metrics dict, nothing read or timed.
:func:`adanet.cli.report.write_run_report` measures what it needs and calls it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from adanet._validation import is_int
from adanet.cli.plots import wilson_interval
from adanet.cli.wall_times import WallTimes, wall_time_lines

__all__ = ["CI_METHOD", "add_confidence_intervals", "cheapest_within", "render_report"]

CI_METHOD = "Wilson score interval, 95%"
"""How the confidence intervals of every accuracy are computed."""


def add_confidence_intervals(metrics: dict[str, Any]) -> dict[str, Any]:
    """Adds ``ci95`` ``[low, high]`` to every anytime and budgeted row, in place.

    Intervals are Wilson score intervals over ``metrics["num_test"]`` images; ``ci_method``
    records that.

    Args:
        metrics: The dict :func:`adanet.cli.evaluate_run` returned (or read from
            ``metrics.json``).

    Returns:
        ``metrics`` itself.

    Raises:
        ValueError: If ``num_test`` is missing or not a positive integer.
    """
    n = metrics.get("num_test")
    if not is_int(n) or n < 1:
        raise ValueError(f"metrics['num_test'] must be a positive integer, got {n!r}")
    for row in metrics.get("anytime", []):
        row["ci95"] = list(wilson_interval(float(row["top1"]), n))
    for row in metrics.get("budgeted", []):
        row["ci95"] = list(wilson_interval(float(row["accuracy"]), n))
    metrics["ci_method"] = CI_METHOD
    return metrics


def cheapest_within(metrics: Mapping[str, Any], gap: float = 0.01) -> Mapping[str, Any] | None:
    """The cheapest budgeted row whose accuracy is at most ``gap`` below the last exit's.

    Args:
        metrics: Metrics with ``anytime`` and ``budgeted`` rows.
        gap: Allowed accuracy loss, as a fraction (0.01 = one point).

    Returns:
        The row, or ``None`` when no budget comes that close.
    """
    anytime = metrics.get("anytime") or []
    rows = metrics.get("budgeted") or []
    if not anytime or not rows:
        return None
    floor = float(anytime[-1]["top1"]) - gap
    close = [row for row in rows if float(row["accuracy"]) >= floor]
    return min(close, key=lambda row: float(row["mean_macs"])) if close else None


def _percent(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _interval(row: Mapping[str, Any]) -> str:
    if "ci95" not in row:
        return "n/a"
    low, high = row["ci95"]
    return f"{100.0 * low:.2f}–{100.0 * high:.2f}"


def _config_lines(metrics: Mapping[str, Any], config: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Run", "", "| setting | value |", "|---|---|"]
    train = metrics.get("train") or {}
    facts: list[tuple[str, Any]] = [
        ("architecture", metrics.get("arch")),
        ("data", metrics.get("data")),
        ("checkpoint evaluated", metrics.get("checkpoint")),
        ("epochs", train.get("epochs")),
        ("training time (s)", None if "seconds_this_run" not in train else
         f"{float(train['seconds_this_run']):.0f}"),
        ("best validation top-1 (last exit)", None if train.get("best_val_top1") is None else
         _percent(float(train["best_val_top1"]))),
        ("test images", metrics.get("num_test")),
        ("calibration images", metrics.get("num_calibration")),
        ("cost convention", metrics.get("cost_convention")),
    ]  # fmt: skip
    if config is not None:
        facts.append(("model config", f"`{json.dumps(config, sort_keys=True)}`"))
    for name, value in facts:
        if value is not None:
            lines.append(f"| {name} | {value} |")
    return [*lines, ""]


def render_report(
    metrics: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    wall_times: WallTimes | None = None,
    title: str = "adanet run report",
    prefix: str = "",
) -> str:
    """The markdown of ``report.md`` for a run's metrics.

    Args:
        metrics: The run's metrics (``anytime`` rows with ``macs``/``top1``/``top5``, optional
            ``budgeted`` rows, ``num_test``, ``calibration_split``, ...), with ``ci95``
            intervals when :func:`add_confidence_intervals` has been applied.
        config: The model config, shown in the run table.
        wall_times: Timings from :func:`measure_wall_times`, shown in their own table.
        title: The top heading.
        prefix: Prefix of the plot files the report embeds.

    Returns:
        The report text.

    Raises:
        ValueError: If ``metrics`` has no anytime rows.
    """
    anytime = list(metrics.get("anytime") or [])
    if not anytime:
        raise ValueError("metrics has no 'anytime' rows to report")
    full = float(anytime[-1]["macs"])
    ci_note = (
        f"Intervals: {metrics.get('ci_method', CI_METHOD)}, over the test images of each point "
        "(all points share the same test images, so their errors are correlated)."
    )
    lines = [f"# {title}", "", *_split_lines(metrics), *_config_lines(metrics, config)]
    lines += _anytime_lines(anytime, full)
    lines += ["", ci_note, "", f"![Anytime prediction]({prefix}anytime.png)", ""]
    if metrics.get("budgeted"):
        lines += _budgeted_lines(metrics, full)
        lines += ["", ci_note, "", f"![Budgeted batch classification]({prefix}budgeted.png)", ""]
    if wall_times is not None:
        lines += wall_time_lines(
            wall_times, str(metrics.get("device", "the evaluation device")), prefix
        )
    return "\n".join(lines)


def _split_lines(metrics: Mapping[str, Any]) -> list[str]:
    """Which split the thresholds were calibrated on; a warning when it was the test split."""
    split = metrics.get("calibration_split")
    if split == "validation":
        return [
            f"Early-exit thresholds were calibrated on the **validation** split "
            f"({metrics.get('num_calibration')} images), never on the test split; every "
            f"accuracy below is measured on the test split ({metrics.get('num_test')} images), "
            "and every budgeted point was run for real with early exit (`adanet.early_exit`).",
            "",
        ]
    if split is not None:
        return [
            f"> **Warning:** this run had no validation split, so the thresholds were "
            f"calibrated on the **{split}** split they are scored on: the budgeted accuracies "
            "are optimistic. Train with `--use-valid`.",
            "",
        ]
    return []


def _anytime_lines(anytime: Sequence[Mapping[str, Any]], full: float) -> list[str]:
    lines = [
        "## Anytime prediction",
        "",
        "Every test image classified at exit k.",
        "",
        "| exit | MMACs | % of last exit | top-1 | 95% CI (%) | top-5 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in anytime:
        macs = float(row["macs"])
        lines.append(
            f"| {row['exit']} | {macs / 1e6:.3f} | {100 * macs / full:.1f}% | "
            f"{_percent(float(row['top1']))} | {_interval(row)} | "
            f"{_percent(float(row.get('top5', float('nan'))))} |"
        )
    return lines


def _budgeted_lines(metrics: Mapping[str, Any], full: float) -> list[str]:
    lines = [
        "## Budgeted batch classification",
        "",
        "Thresholds calibrated so that a geometric share (ratio p) of the calibration "
        "images leaves at each exit, then run for real on the test split.",
        "",
        "| p | MMACs | % of last exit | top-1 | 95% CI (%) | ms / image | exit shares |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in sorted(metrics["budgeted"], key=lambda r: float(r["mean_macs"])):
        macs = float(row["mean_macs"])
        shares = " ".join(f"{f:.2f}" for f in row.get("exit_fractions", []))
        lines.append(
            f"| {float(row['p']):.2f} | {macs / 1e6:.3f} | {100 * macs / full:.1f}% | "
            f"{_percent(float(row['accuracy']))} | {_interval(row)} | "
            f"{1e3 * float(row.get('seconds_per_image', float('nan'))):.3f} | {shares} |"
        )
    best = cheapest_within(metrics)
    lines.append("")
    if best is None:
        lines.append("No budget came within 1 point of the last exit.")
    else:
        lines.append(
            f"Cheapest budget within 1 point of the last exit: p = {float(best['p']):.2f}, "
            f"top-1 {_percent(float(best['accuracy']))} at "
            f"{100 * float(best['mean_macs']) / full:.1f}% of the last exit's MACs."
        )
    return lines
