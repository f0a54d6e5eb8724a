"""Tests for adanet.cli.report: the run's report.md, its timings and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adanet import RANet, RANetConfig
from adanet.cli import evaluate_run
from adanet.cli.policy_runs import PolicyOptions
from adanet.cli.report import timing_networks, write_run_report
from adanet.cli.report_text import CI_METHOD
from adanet.data import DataLoaders


@pytest.fixture(scope="module")
def model_and_loader() -> tuple[RANet, DataLoader[Any]]:
    torch.manual_seed(0)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4)).eval()
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 4, (40,))
    return model, DataLoader(TensorDataset(x, y), batch_size=16)


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
