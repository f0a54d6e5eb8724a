"""Tests for adanet.cli.plots: PNG output and the optional matplotlib dependency."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adanet.calibration.budgeted import budgeted_sweep
from adanet.cli.plots import plot_anytime, plot_budgeted, plot_time_against_macs, wilson_interval

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000  # a real rendered figure, not an empty stub


@dataclass
class AnytimeRow:
    macs: float
    top1: float


@pytest.fixture
def needs_matplotlib() -> None:
    pytest.importorskip("matplotlib")


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_anytime_accepts_dicts_and_objects(tmp_path: Path) -> None:
    dict_rows = [{"macs": 15e6 * (k + 1), "top1": 0.6 + 0.03 * k} for k in range(5)]
    out = plot_anytime(dict_rows, tmp_path / "dicts.png")
    assert out == tmp_path / "dicts.png"
    assert_png(out)
    obj_rows = [AnytimeRow(macs=15e6 * (k + 1), top1=0.6 + 0.03 * k) for k in range(5)]
    assert_png(plot_anytime(obj_rows, str(tmp_path / "nested" / "objects.png")))


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_budgeted_from_records_and_dicts(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    val = torch.randn(4, 300, 5, generator=gen)
    test = torch.randn(4, 300, 5, generator=gen)
    targets = torch.randint(0, 5, (300,), generator=gen)
    records = budgeted_sweep(val, targets, test, targets, [1e6, 2e6, 3e6, 4e6])
    reference = {
        "anytime": [(1e6 * (k + 1), 0.2 + 0.01 * k) for k in range(4)],
        "anytime records": [{"macs": 2e6, "top1": 0.21}, AnytimeRow(macs=3e6, top1=0.23)],
    }
    assert_png(plot_budgeted(records, tmp_path / "records.png", reference_points=reference))
    dicts = [{"mean_macs": r.mean_cost, "accuracy": r.accuracy} for r in records]
    assert_png(plot_budgeted(dicts, tmp_path / "mean_macs.png"))
    dicts = [{"mean_cost": r.mean_cost, "accuracy": r.accuracy} for r in records]
    assert_png(plot_budgeted(dicts, tmp_path / "mean_cost.png"))


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_does_not_switch_pyplot_backend(tmp_path: Path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    plot_anytime([{"macs": 1e6, "top1": 0.5}], tmp_path / "a.png")
    assert matplotlib.get_backend() == before


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plot_anytime([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'top1'"):
        plot_anytime([{"macs": 1.0}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'mean_macs' or 'mean_cost'"):
        plot_budgeted([{"accuracy": 0.5}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_budgeted([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_gives_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes "import matplotlib" raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "adanet-torch\[plot\]"'):
        plot_anytime([{"macs": 1e6, "top1": 0.5}], tmp_path / "a.png")
    with pytest.raises(ImportError, match=r'pip install "adanet-torch\[plot\]"'):
        plot_budgeted([{"mean_cost": 1e6, "accuracy": 0.5}], tmp_path / "b.png")


# Wilson intervals, checked against values computed by hand from the closed form
# (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with z = 1.959964.


def test_wilson_interval_known_values() -> None:
    # n = 100, 90 correct: centre 0.88520, half-width 0.05957 -> (0.82563, 0.94477).
    low, high = wilson_interval(0.9, 100)
    assert low == pytest.approx(0.82564, abs=1e-4)
    assert high == pytest.approx(0.94477, abs=1e-4)
    # n = 10, none correct: (0, z²/(n + z²)) = (0, 0.27753).
    low, high = wilson_interval(0.0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.27753, abs=1e-4)
    # All correct mirrors it.
    low, high = wilson_interval(1.0, 10)
    assert low == pytest.approx(1.0 - 0.27753, abs=1e-4)
    assert high == 1.0


def test_wilson_interval_narrows_with_more_samples() -> None:
    widths = [wilson_interval(0.95, n)[1] - wilson_interval(0.95, n)[0] for n in (100, 1000, 5000)]
    assert widths[0] > widths[1] > widths[2]
    # About 2 * 1.96 * sqrt(0.95 * 0.05 / 5000) = 1.2 points for 5,000 images.
    assert widths[2] == pytest.approx(0.01208, abs=3e-4)
    low, high = wilson_interval(0.95, 5000, z=1.0)
    assert high - low < widths[2]


@pytest.mark.parametrize(
    ("accuracy", "n", "z", "match"),
    [(1.5, 10, 1.96, "accuracy"), (-0.1, 10, 1.96, "accuracy"), (0.5, 0, 1.96, "num_samples"),
     (0.5, 10, 0.0, "z"), (float("nan"), 10, 1.96, "accuracy")],
)  # fmt: skip
def test_wilson_interval_rejects_bad_input(accuracy: float, n: int, z: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        wilson_interval(accuracy, n, z)


def _capture_axes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Keeps every figure the plots module draws, to inspect its artists."""
    import adanet.cli.plots as plots

    figures: list[object] = []
    original = plots._figure_and_canvas

    def recording() -> tuple[object, object]:
        figure, canvas = original()
        figures.append(figure)
        return figure, canvas

    monkeypatch.setattr(plots, "_figure_and_canvas", recording)
    return figures


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_anytime_draws_confidence_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = _capture_axes(monkeypatch)
    rows = [{"macs": 1e6 * (k + 1), "top1": 0.8 + 0.04 * k} for k in range(3)]
    assert_png(plot_anytime(rows, tmp_path / "ci.png", num_samples=1000))
    ax = figures[0].axes[0]  # type: ignore[attr-defined]
    # One error-bar segment per exit, spanning the Wilson interval in percent.
    segments = ax.collections[0].get_segments()
    assert len(segments) == 3
    for row, segment in zip(rows, segments, strict=True):
        low, high = wilson_interval(row["top1"], 1000)
        ys = sorted(float(y) for _, y in segment)
        assert ys == pytest.approx([100 * low, 100 * high])
    assert "Wilson" in ax.get_legend().get_title().get_text()
    with pytest.raises(ValueError, match="num_samples"):
        plot_anytime(rows, tmp_path / "bad.png", num_samples=0)


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_budgeted_static_exits_and_point_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = _capture_axes(monkeypatch)
    curve = [{"mean_macs": 1e6 * c, "accuracy": a} for c, a in ((1, 0.8), (2, 0.9), (3, 0.92))]
    exits = [{"macs": 1e6 * (k + 1), "top1": 0.78 + 0.07 * k} for k in range(3)]
    risk = [{"mean_macs": 1.5e6, "accuracy": 0.85}, {"mean_macs": 2.5e6, "accuracy": 0.91}]
    out = plot_budgeted(
        curve,
        tmp_path / "budgeted.png",
        num_samples=500,
        static_exits=exits,
        point_series={"risk-controlled": risk},
    )
    assert_png(out)
    ax = figures[0].axes[0]  # type: ignore[attr-defined]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0].startswith("early exit")
    assert "each exit alone (static)" in labels
    assert "last exit" in labels
    assert "risk-controlled" in labels
    # The early-exit curve's interval is a shaded band whose top at the cheapest point is the
    # Wilson upper end of 80% over 500 images.
    band = next(
        c
        for c in ax.collections
        if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
    )
    top = max(float(y) for x, y in band.get_paths()[0].vertices if abs(float(x) - 1.0) < 1e-9)
    assert top == pytest.approx(100 * wilson_interval(0.8, 500)[1])
    # The last exit's accuracy is drawn as a horizontal line.
    assert any(list(line.get_ydata()) == pytest.approx([92.0, 92.0]) for line in ax.get_lines())
    with pytest.raises(ValueError, match="each bad record needs 'macs' or 'mean_macs'"):
        plot_budgeted(curve, tmp_path / "x.png", point_series={"bad": [{"accuracy": 0.5}]})


@pytest.mark.usefixtures("needs_matplotlib")
def test_plot_time_against_macs_draws_the_diagonal_and_each_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = _capture_axes(monkeypatch)
    series = {"eager": [(0.6, 0.9), (0.3, 0.5)], "optimized": [(0.3, 0.4), (0.6, 0.7)]}
    assert_png(plot_time_against_macs(series, tmp_path / "time.png", note="batch 64"))
    ax = figures[0].axes[0]  # type: ignore[attr-defined]
    lines = {line.get_label(): line for line in ax.get_lines()}
    diagonal = lines["time = MACs"]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    # Each way's points, in order of their MACs ratio.
    assert list(lines["eager"].get_xdata()) == [0.3, 0.6]
    assert list(lines["eager"].get_ydata()) == [0.5, 0.9]
    assert list(lines["optimized"].get_ydata()) == [0.4, 0.7]
    assert ax.get_legend().get_title().get_text() == "batch 64"
    with pytest.raises(ValueError, match="at least one point"):
        plot_time_against_macs({"eager": []}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="finite and >= 0"):
        plot_time_against_macs({"eager": [(0.5, float("nan"))]}, tmp_path / "nan.png")
