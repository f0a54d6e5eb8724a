"""The report's shifted-stream section, from a real (tiny) run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from adanet.cli.stream_report import (
    RunLogits,
    compare_on_stream,
    load_run_model,
    render_stream_section,
    run_logits,
    write_stream_section,
)
from synthetic_logits import make_logits


def test_section_from_a_run_folder(guaranteed_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(guaranteed_run, run)
    before = (run / "report.md").read_text(encoding="utf-8")
    lines: list[str] = []
    section = write_stream_section(
        run,
        say=lines.append,
        block_size=60,
        num_blocks=4,
        window=30,
        batch_size=8,
        target_share=0.8,
    )
    report = (run / "report.md").read_text(encoding="utf-8")
    assert report.startswith(before) and report.endswith(section)
    assert "## A shifting stream" in section and "![Cost per window](stream.png)" in section
    for name in ("static thresholds", "online controller", "per-batch budget"):
        assert f"| {name} |" in section
    assert (run / "stream.png").stat().st_size > 0
    saved = json.loads((run / "stream.json").read_text(encoding="utf-8"))
    assert set(saved["cost"]["runs"]) == {"static thresholds", "online controller",
                                          "per-batch budget"}  # fmt: skip
    assert len(lines) == 4 and all("shifted stream" in line for line in lines)
    logits = run_logits(run)
    model = load_run_model(run)
    with torch.no_grad():
        direct = model(next(iter(torch.utils.data.DataLoader(_val(run), batch_size=4)))[0])
    torch.testing.assert_close(logits.calibration[:, :4], torch.stack(direct))


def _val(run: Path) -> torch.utils.data.Dataset:  # type: ignore[type-arg]
    from adanet.data import build_datasets

    settings = json.loads((run / "config.json").read_text(encoding="utf-8"))
    splits = build_datasets("digits", None, use_valid=True, seed=int(settings["seed"]))
    assert splits.val is not None
    return splits.val


def test_section_markdown_reports_every_method() -> None:
    costs = [1.0, 2.0, 3.0, 5.0]
    logits = RunLogits(
        make_logits(4, 400, seed=1), torch.zeros(400, dtype=torch.long),
        make_logits(4, 600, seed=2), torch.zeros(600, dtype=torch.long), costs,
    )  # fmt: skip
    comparison = compare_on_stream(logits, block_size=100, num_blocks=4, window=50)
    text = render_stream_section(comparison, plot="x.png")
    assert "![Cost per window](x.png)" in text
    assert text.count("| online controller |") == 2  # the cost table and the drop table
    assert comparison.target_cost == pytest.approx(0.45 * 5.0)
