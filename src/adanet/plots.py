"""Accuracy-versus-cost plots for anytime and budgeted evaluation, written as PNG files.

matplotlib is an optional dependency (``pip install "adanet-torch[plot]"``). It is imported only
when a plot is drawn, and figures are rendered with the Agg canvas directly, so plotting never
changes the pyplot backend of the calling program.

Costs are given in MACs and drawn in MMACs; accuracies are fractions in ``[0, 1]`` and drawn in
percent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_anytime", "plot_budgeted"]

_INSTALL_HINT = 'plotting needs matplotlib; install it with: pip install "adanet-torch[plot]"'
_MEGA = 1e6


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
) -> Path:
    """Plots the accuracy of each exit against its cumulative cost.

    Args:
        records: One record per exit, in exit order: mappings with keys ``"macs"`` and
            ``"top1"`` or objects with those attributes (cost in MACs, accuracy as a fraction).
        path: Where to write the PNG; parent folders are created.
        title: Figure title.

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If there are no records or one lacks ``macs`` / ``top1``.
    """
    rows = list(records)
    if not rows:
        raise ValueError("plot_anytime needs at least one record")
    macs = [_field(r, ("macs",), "anytime") / _MEGA for r in rows]
    top1 = [100.0 * _field(r, ("top1",), "anytime") for r in rows]
    figure, canvas = _figure_and_canvas()
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(macs, top1, marker="o", label="exits")
    for k, (x, y) in enumerate(zip(macs, top1, strict=True)):
        ax.annotate(
            str(k), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8, alpha=0.7
        )
    _style_axes(ax, title)
    return _finish(figure, canvas, path)


def _reference_xy(points: Sequence[Any]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for point in points:
        if isinstance(point, tuple | list) and len(point) == 2:
            x, y = float(point[0]), float(point[1])
        else:
            x = _field(point, ("macs", "mean_macs", "mean_cost"), "reference")
            y = _field(point, ("top1", "accuracy"), "reference")
        xs.append(x / _MEGA)
        ys.append(100.0 * y)
    return xs, ys


def plot_budgeted(
    records: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike[str],
    reference_points: Mapping[str, Sequence[Any]] | None = None,
    *,
    title: str = "Budgeted batch classification",
) -> Path:
    """Plots accuracy against mean cost per sample for a budgeted sweep.

    Args:
        records: :class:`adanet.budgeted.BudgetRecord` objects, or mappings / objects with
            ``"mean_macs"`` or ``"mean_cost"`` (MACs) and ``"accuracy"`` (fraction).
        path: Where to write the PNG; parent folders are created.
        reference_points: Optional curves to compare with, by legend label: each a sequence of
            ``(macs, accuracy)`` pairs (MACs, fraction) or of records with ``macs``/``top1``
            or ``mean_cost``/``accuracy`` (e.g. the anytime records of the same network, or
            published numbers).
        title: Figure title.

    Returns:
        The path written.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If there are no records or one lacks a cost or an accuracy.
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
    figure, canvas = _figure_and_canvas()
    ax = figure.add_subplot(1, 1, 1)
    ax.plot([x for x, _ in points], [y for _, y in points], marker=".", label="early exit")
    for label, ref in (reference_points or {}).items():
        xs, ys = _reference_xy(ref)
        ax.plot(xs, ys, marker="x", linestyle="--", label=str(label))
    ax.legend(loc="lower right")
    _style_axes(ax, title)
    return _finish(figure, canvas, path)
