"""Accuracy-versus-cost plots for anytime and budgeted evaluation, written as PNG files.

matplotlib is an optional dependency (``pip install "adanet-torch[plot]"``). It is imported only
when a plot is drawn, and figures are rendered with the Agg canvas directly, so plotting never
changes the pyplot backend of the calling program.

Costs are given in MACs and drawn in MMACs; accuracies are fractions in ``[0, 1]`` and drawn in
percent. Given the number of test images, accuracies get 95% confidence intervals by the Wilson
score method (:func:`wilson_interval`), which, unlike the normal approximation, stays inside
``[0, 1]`` and keeps its coverage for accuracies close to 100%.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adanet._validation import is_int

__all__ = ["Z_95", "plot_anytime", "plot_budgeted", "plot_time_against_macs", "wilson_interval"]

_INSTALL_HINT = 'plotting needs matplotlib; install it with: pip install "adanet-torch[plot]"'
_MEGA = 1e6

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: the z of a two-sided 95% interval."""


def wilson_interval(accuracy: float, num_samples: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion, 95% by default.

    For ``n`` images of which a share ``a`` is correct, the interval is
    ``(a + z²/2n ± z·sqrt(a(1-a)/n + z²/4n²)) / (1 + z²/n)``.

    Args:
        accuracy: The observed share correct, in ``[0, 1]``.
        num_samples: The number of images it was measured on, at least 1.
        z: Standard normal quantile of the interval (1.96 for 95%).

    Returns:
        ``(low, high)``, fractions with ``0 <= low <= accuracy <= high <= 1``.

    Raises:
        ValueError: If ``accuracy`` is outside ``[0, 1]``, ``num_samples < 1`` or ``z <= 0``.
    """
    if not is_int(num_samples) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    if not (math.isfinite(z) and z > 0.0):
        raise ValueError(f"z must be positive, got {z!r}")
    n = float(num_samples)
    z2 = z * z
    centre = (accuracy + z2 / (2.0 * n)) / (1.0 + z2 / n)
    half = z * math.sqrt(accuracy * (1.0 - accuracy) / n + z2 / (4.0 * n * n)) / (1.0 + z2 / n)
    # Clamp the rounding of the two ends, never the interval itself.
    return max(0.0, min(accuracy, centre - half)), min(1.0, max(accuracy, centre + half))


def _error_bars(accuracies: Sequence[float], num_samples: int | None) -> list[list[float]] | None:
    """Matplotlib ``yerr`` (below, above) in percentage points, or ``None`` without ``n``."""
    if num_samples is None:
        return None
    below: list[float] = []
    above: list[float] = []
    for percent in accuracies:
        low, high = wilson_interval(percent / 100.0, num_samples)
        below.append(percent - 100.0 * low)
        above.append(100.0 * high - percent)
    return [below, above]


def _ci_note(num_samples: int | None) -> str:
    if num_samples is None:
        return ""
    return f"bars: 95% Wilson intervals, n = {num_samples:,} test images"


def _figure_and_canvas() -> tuple[Any, Any]:
    """A new matplotlib figure attached to an Agg canvas."""
    try:
        # Import the top-level package first: a missing or blocked matplotlib must fail here even
        # if some submodule happens to be cached.
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    figure = Figure(figsize=(6.0, 4.2), dpi=120)
    canvas = FigureCanvasAgg(figure)
    return figure, canvas


def _field(record: Any, names: Sequence[str], what: str) -> float:
    """First of ``names`` found on a mapping (as key) or an object (as attribute)."""
    for name in names:
        if isinstance(record, Mapping):
            if name in record:
                return float(record[name])
        elif hasattr(record, name):
            return float(getattr(record, name))
    wanted = " or ".join(repr(n) for n in names)
    raise ValueError(f"each {what} record needs {wanted} (as a key or attribute), got {record!r}")


def _finish(figure: Any, canvas: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    canvas.print_png(str(out))
    return out


def _style_axes(ax: Any, title: str) -> None:
    ax.set_xlabel("Cost per image (MMACs)")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def plot_anytime(
    records: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike[str],
    *,
    title: str = "Anytime prediction",
    num_samples: int | None = None,
) -> Path:
    """Plots the accuracy of each exit against its cumulative cost.

    Args:
        records: One record per exit, in exit order: mappings with keys ``"macs"`` and
            ``"top1"`` or objects with those attributes (cost in MACs, accuracy as a fraction).
        path: Where to write the PNG; parent folders are created.
        title: Figure title.
        num_samples: Number of test images the accuracies were measured on; when given, each
            exit gets a 95% Wilson confidence interval (:func:`wilson_interval`).

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If there are no records, one lacks ``macs`` / ``top1``, or
            ``num_samples`` is not a positive integer.
    """
    rows = list(records)
    if not rows:
        raise ValueError("plot_anytime needs at least one record")
    macs = [_field(r, ("macs",), "anytime") / _MEGA for r in rows]
    top1 = [100.0 * _field(r, ("top1",), "anytime") for r in rows]
    yerr = _error_bars(top1, num_samples)
    figure, canvas = _figure_and_canvas()
    ax = figure.add_subplot(1, 1, 1)
    ax.errorbar(macs, top1, yerr=yerr, marker="o", capsize=3, label="exit k, all images")
    for k, (x, y) in enumerate(zip(macs, top1, strict=True)):
        ax.annotate(
            f"exit {k}", (x, y), textcoords="offset points", xytext=(5, -12), fontsize=8, alpha=0.8
        )
    _style_axes(ax, title)
    if num_samples is not None:
        ax.legend(loc="lower right", title=_ci_note(num_samples), title_fontsize=7, fontsize=8)
    return _finish(figure, canvas, path)


def _series_xy(points: Sequence[Any], what: str) -> tuple[list[float], list[float]]:
    """(MMACs, percent) of points given as ``(macs, accuracy)`` pairs or records."""
    xs: list[float] = []
    ys: list[float] = []
    for point in points:
        if isinstance(point, tuple | list) and len(point) == 2:
            x, y = float(point[0]), float(point[1])
        else:
            x = _field(point, ("macs", "mean_macs", "mean_cost"), what)
            y = _field(point, ("top1", "accuracy"), what)
        xs.append(x / _MEGA)
        ys.append(100.0 * y)
    return xs, ys


def plot_budgeted(
    records: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike[str],
    reference_points: Mapping[str, Sequence[Any]] | None = None,
    *,
    title: str = "Budgeted batch classification",
    num_samples: int | None = None,
    static_exits: Sequence[Any] | None = None,
    point_series: Mapping[str, Sequence[Any]] | None = None,
) -> Path:
    """Plots accuracy against mean cost per sample for a budgeted sweep.

    Args:
        records: :class:`adanet.calibration.BudgetRecord` objects, or mappings / objects with
            ``"mean_macs"`` or ``"mean_cost"`` (MACs) and ``"accuracy"`` (fraction): the
            greedy early-exit curve.
        path: Where to write the PNG; parent folders are created.
        reference_points: Optional curves to compare with, by legend label, drawn as dashed
            lines: each a sequence of ``(macs, accuracy)`` pairs (MACs, fraction) or of records
            with ``macs``/``top1`` or ``mean_macs``/``mean_cost``/``accuracy`` (e.g. published
            numbers).
        title: Figure title.
        num_samples: Number of test images every accuracy was measured on; when given, all
            points get 95% Wilson confidence intervals (:func:`wilson_interval`): a shaded band
            for the early-exit curve, error bars for the other points.
        static_exits: The anytime records of the same network (``macs``/``top1``): each exit
            used alone for every image, drawn as the static baselines, with a dotted line at
            the last exit's accuracy.
        point_series: Further labelled point sets, drawn as markers without lines (e.g. the
            points of risk-controlled policies), in the formats ``reference_points`` accepts.

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If there are no records, a record or point lacks a cost or an accuracy, or
            ``num_samples`` is not a positive integer.
    """
    rows = list(records)
    if not rows:
        raise ValueError("plot_budgeted needs at least one record")
    points = sorted(
        (
            _field(r, ("mean_macs", "mean_cost"), "budgeted") / _MEGA,
            100.0 * _field(r, ("accuracy",), "budgeted"),
        )
        for r in rows
    )
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    bars = _error_bars(ys, num_samples)
    figure, canvas = _figure_and_canvas()
    ax = figure.add_subplot(1, 1, 1)
    (line,) = ax.plot(xs, ys, marker=".", label="early exit (greedy thresholds)", zorder=3)
    if bars is not None:
        low = [y - b for y, b in zip(ys, bars[0], strict=True)]
        high = [y + b for y, b in zip(ys, bars[1], strict=True)]
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if static_exits is not None:
        sx, sy = _series_xy(static_exits, "static exit")
        ax.errorbar(
            sx,
            sy,
            yerr=_error_bars(sy, num_samples),
            marker="s",
            linestyle="none",
            capsize=3,
            color="tab:gray",
            label="each exit alone (static)",
        )
        if sy:
            ax.axhline(sy[-1], color="tab:gray", linestyle=":", linewidth=1, label="last exit")
    markers = iter("D^vP*X<>")
    for label, series in (point_series or {}).items():
        px, py = _series_xy(series, str(label))
        ax.errorbar(
            px,
            py,
            yerr=_error_bars(py, num_samples),
            marker=next(markers, "o"),
            linestyle="none",
            capsize=3,
            label=str(label),
            zorder=4,
        )
    for label, ref in (reference_points or {}).items():
        rx, ry = _series_xy(ref, "reference")
        ax.plot(rx, ry, marker="x", linestyle="--", label=str(label))
    _style_axes(ax, title)
    ax.legend(loc="lower right", title=_ci_note(num_samples) or None, title_fontsize=7, fontsize=8)
    return _finish(figure, canvas, path)


def plot_time_against_macs(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Early exit: wall time against MACs",
    note: str = "",
) -> Path:
    """Plots each budget point's wall-time ratio against its MACs ratio, with the diagonal.

    Both ratios are relative to the static network run to its last exit (its time and its
    MACs): a point on the diagonal saves as much time as MACs, a point above it saves less, a
    point above 1 takes longer than not exiting early at all.

    Args:
        series: Per way of running the network (``"eager"``, ``"ONNX Runtime"``, ...), its
            ``(macs_ratio, time_ratio)`` points.
        path: Where to write the PNG; parent folders are created.
        title: Figure title.
        note: A line under the legend (the machine, the batch size).

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If there is no point, or a ratio is not a finite non-negative number.
    """
    if not any(series.values()):
        raise ValueError("plot_time_against_macs needs at least one point")
    top = 1.0
    for label, points in series.items():
        for macs, seconds in points:
            if not (math.isfinite(macs) and math.isfinite(seconds) and min(macs, seconds) >= 0):
                raise ValueError(f"{label}: ratios must be finite and >= 0, got {(macs, seconds)}")
            top = max(top, macs, seconds)
    figure, canvas = _figure_and_canvas()
    ax = figure.add_subplot(1, 1, 1)
    ax.plot([0, top], [0, top], color="tab:gray", linestyle="--", linewidth=1, label="time = MACs")
    ax.axhline(1.0, color="tab:gray", linestyle=":", linewidth=1, label="static last exit")
    markers = iter("os^DvP*X")
    for label, points in series.items():
        ordered = sorted(points)
        ax.plot(
            [m for m, _ in ordered],
            [t for _, t in ordered],
            marker=next(markers, "o"),
            label=str(label),
        )
    ax.set_xlim(0, 1.05 * top)
    ax.set_ylim(0, 1.05 * top)
    ax.set_xlabel("MACs per image / static last exit's")
    ax.set_ylabel("Wall time per image / static last exit's")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", title=note or None, title_fontsize=7, fontsize=8)
    return _finish(figure, canvas, path)
