"""Tests for adanet.plots: PNG output and the optional matplotlib dependency."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adanet.budgeted import budgeted_sweep
from adanet.plots import plot_anytime, plot_budgeted

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
