"""``adanet export``: a run folder becomes a directory that ``load_pretrained`` reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import adanet
import adanet.cli as cli
from adanet.compat.checkpoints import read_state_dict
from adanet.training import BEST_MODEL, LAST_CHECKPOINT


def test_export_writes_a_directory_load_pretrained_reads(
    guaranteed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model"
    assert cli.main(["export", "--save", str(guaranteed_run), "--to", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    model: Any = adanet.load_pretrained(target)
    weights = guaranteed_run / BEST_MODEL
    if not weights.is_file():
        weights = guaranteed_run / LAST_CHECKPOINT
    state = read_state_dict(weights)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0, msg=name)
    # The policy kept is the run's budgeted policy nearest p = 1.
    entries = json.loads((guaranteed_run / "policies.json").read_text())["policies"]
    nearest = min(entries, key=lambda e: abs(e["p"] - 1.0))["policy"]
    assert model.pretrained.policy is not None
    assert model.pretrained.policy.to_dict()["thresholds"] == nearest["thresholds"]


def test_export_picks_the_policy_of_p(guaranteed_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "model"
    assert cli.main(["export", "--save", str(guaranteed_run), "--to", str(target), "--p", "3"]) == 0
    entries = json.loads((guaranteed_run / "policies.json").read_text())["policies"]
    nearest = min(entries, key=lambda e: abs(e["p"] - 3.0))["policy"]
    loaded: Any = adanet.load_pretrained(target)
    policy = loaded.pretrained.policy
    assert policy is not None and policy.to_dict()["thresholds"] == nearest["thresholds"]


def test_a_non_empty_target_needs_overwrite(
    guaranteed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    command = ["export", "--save", str(guaranteed_run), "--to", str(target)]
    assert cli.main(command) == 2
    assert "--overwrite" in capsys.readouterr().err
    # The export replaces the folder whole: a file it did not write is refused, not deleted.
    assert cli.main([*command, "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    assert cli.main(command) == 0
    first = (target / "model.safetensors").read_bytes()
    assert cli.main([*command, "--p", "0.5"]) == 2  # an earlier export: --overwrite needed
    assert cli.main([*command, "--p", "0.5", "--overwrite"]) == 0
    assert (target / "model.safetensors").read_bytes() == first
    adanet.load_pretrained(target)


def test_a_missing_run_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["export", "--save", str(tmp_path / "nope"), "--to", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("adanet: error:") and "config.json" in err
    assert not (tmp_path / "m").exists()


def test_an_unreadable_run_is_a_usage_error(
    guaranteed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(guaranteed_run, run)
    (run / "config.json").write_text(json.dumps({"arch": "resnet", "config": {}}))
    assert cli.main(["export", "--save", str(run), "--to", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adanet: error: cannot export") and "resnet" in err


def test_a_bad_p_is_rejected_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--save", str(tmp_path), "--to", str(tmp_path / "m"), "--p", "0"])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_export_with_onnx_runs_in_onnx_runtime(guaranteed_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the optional onnx extra")
    from adanet.data import digits_datasets
    from adanet.deploy.onnx import EarlyExitSession

    target = tmp_path / "model"
    assert cli.main(["export", "--save", str(guaranteed_run), "--to", str(target), "--onnx"]) == 0
    assert (target / "onnx" / "manifest.json").is_file()
    assert (target / "onnx" / "early_exit_session.py").is_file()
    splits = digits_datasets(seed=0, use_valid=True)
    images = torch.stack([splits.test[i][0] for i in range(7)])
    out = EarlyExitSession(target / "onnx").run(images.numpy())
    assert out["logits"].shape == (7, 10) and out["exit_index"].shape == (7,)


@pytest.mark.slow
def test_export_with_int8_runs_in_onnx_runtime(guaranteed_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the optional onnx extra")
    import onnx

    from adanet.data import digits_datasets
    from adanet.deploy.onnx import EarlyExitSession

    target = tmp_path / "model"
    command = ["export", "--save", str(guaranteed_run), "--to", str(target), "--int8"]
    assert cli.main([*command, "--calibration-images", "64"]) == 0
    manifest = json.loads((target / "onnx_int8" / "manifest.json").read_text())
    assert manifest["quantization"]["calibration_images"] == 64
    kinds = {
        node.op_type for node in onnx.load(str(target / "onnx_int8" / "stage_0.onnx")).graph.node
    }
    assert "DequantizeLinear" in kinds
    splits = digits_datasets(seed=0, use_valid=True)
    images = torch.stack([splits.test[i][0] for i in range(7)])
    # The shipped session runs the int8 stages as it runs the fp32 ones (--int8 implies --onnx).
    out = EarlyExitSession(target / "onnx_int8").run(images.numpy())
    assert out["logits"].shape == (7, 10) and out["exit_index"].shape == (7,)
    fp32 = EarlyExitSession(target / "onnx").run(images.numpy())
    assert fp32["logits"].shape == (7, 10)


def test_a_bad_calibration_count_is_rejected_by_the_parser(tmp_path: Path) -> None:
    command = ["export", "--save", str(tmp_path), "--to", str(tmp_path / "m"), "--int8"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--calibration-images", "0"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("where", ["run", "inside", "holding"])
def test_a_target_overlapping_the_run_is_refused(
    guaranteed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    run = tmp_path / "runs" / "one"
    shutil.copytree(guaranteed_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    target = {"run": run, "inside": run / "export", "holding": tmp_path / "runs"}[where]
    command = ["export", "--save", str(run), "--to", str(target), "--overwrite"]
    assert cli.main(command) == 2
    assert "would overlap the run folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
