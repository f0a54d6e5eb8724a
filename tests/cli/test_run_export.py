"""``export_run``: a training run folder becomes a model directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from adanet import EarlyExitPolicy, RANet
from adanet.cli.run_export import check_export_target, export_run
from adanet.data import CIFAR10_MEAN, CIFAR10_STD
from adanet.deploy.model_dir import PretrainedError, load_pretrained
from adanet.models import PretrainedCfg
from model_dirs import small_ranet


def _fake_run(folder: Path, model: RANet, data: str) -> None:
    folder.mkdir()
    info = {"arch": "RANet", "config": model.config.to_dict(), "data": data, "seed": 0}
    (folder / "config.json").write_text(json.dumps(info))
    torch.save({"format": "adanet-model-1", "model": model.state_dict()}, folder / "model_best.pt")
    policies = [
        {"p": 0.5, "policy": EarlyExitPolicy([0.1, 0.2, -math.inf]).to_dict()},
        {"p": 1.05, "policy": EarlyExitPolicy([0.6, 0.7, -math.inf]).to_dict()},
    ]
    (folder / "policies.json").write_text(json.dumps({"policies": policies}))


def test_export_run_makes_a_model_directory(tmp_path: Path) -> None:
    model = small_ranet()
    _fake_run(tmp_path / "run", model, "cifar10")
    export_run(tmp_path / "run", tmp_path / "out")
    loaded = load_pretrained(tmp_path / "out")
    assert loaded.pretrained.policy == EarlyExitPolicy([0.6, 0.7, -math.inf])  # p nearest 1
    assert loaded.pretrained.preprocessing == PretrainedCfg(
        input_size=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD
    )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[-1], model(x)[-1])
    export_run(tmp_path / "run", tmp_path / "low", p=0.4)
    assert load_pretrained(tmp_path / "low").pretrained.policy == EarlyExitPolicy(
        [0.1, 0.2, -math.inf]
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        export_run(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"neither model_best\.pt"):
        export_run(tmp_path / "out", tmp_path / "x")  # a model directory is not a run


def test_export_run_refuses_a_bad_calibration_count(tmp_path: Path) -> None:
    from adanet.cli.run_export import export_run

    with pytest.raises(ValueError, match="calibration_images must be an int >= 1, got 0"):
        export_run(tmp_path, tmp_path / "m", int8=True, calibration_images=0)


@pytest.mark.parametrize(
    ("target", "refused"),
    [("run", True), ("run/export", True), (".", True), ("run2", False), ("elsewhere/out", False)],
)
def test_a_target_overlapping_the_run_folder_is_refused(
    tmp_path: Path, target: str, refused: bool
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    if refused:
        with pytest.raises(PretrainedError, match="would overlap the run folder"):
            check_export_target(run, tmp_path / target)
    else:
        check_export_target(run, tmp_path / target)  # a sibling whose name starts alike is fine


def test_a_link_to_the_run_folder_is_seen_through(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "alias").symlink_to(run, target_is_directory=True)
    with pytest.raises(PretrainedError, match="would overlap"):
        check_export_target(run, tmp_path / "alias" / "out")


def test_a_folder_holding_other_files_is_not_exported_over(tmp_path: Path) -> None:
    model = small_ranet()
    _fake_run(tmp_path / "run", model, "cifar10")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PretrainedError, match=r"holds \['notes\.txt'\] besides an export's files"):
        export_run(tmp_path / "run", out)
    assert (out / "notes.txt").read_text() == "mine"
