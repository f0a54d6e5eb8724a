"""adanet.cli.train: the run folder ``adanet train`` writes, resumes, refuses to overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import adanet.cli as cli
import adanet.cli.train as train_command
from adanet._atomic import write_json_atomic
from adanet.training import BEST_MODEL, LAST_CHECKPOINT, METRICS_CSV
from adanet.training.losses import MultiExitLoss
from cli_runs import TINY, copy_run, snapshot, train


@pytest.mark.slow
def test_train_writes_the_run_folder_and_eval_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = tmp_path / "run"
    assert train(save, "--epochs", "1", "--use-valid") == 0
    out = capsys.readouterr().out
    assert "Anytime prediction" in out and "Budgeted batch classification" in out
    for name in (
        "config.json",
        "args.txt",
        LAST_CHECKPOINT,
        BEST_MODEL,
        "metrics.json",
        "policies.json",
        "anytime.png",
        "budgeted.png",
    ):
        assert (save / name).is_file(), name
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["cost_convention"] == "actual"
    assert metrics["calibration_split"] == "validation"
    assert [r["exit"] for r in metrics["anytime"]] == [0, 1]
    assert all(0.0 <= r["top1"] <= r["top5"] <= 1.0 for r in metrics["anytime"])
    assert metrics["anytime"][0]["macs"] < metrics["anytime"][1]["macs"]
    assert len(metrics["budgeted"]) == 39
    for row in metrics["budgeted"]:
        assert set(row) >= {"p", "mean_macs", "accuracy", "seconds_per_image", "exit_fractions"}
        assert row["accuracy"] == row["simulated_accuracy"]  # real early exit, same result
        assert row["seconds_per_image"] > 0
        assert sum(row["exit_fractions"]) == pytest.approx(1.0)
    policies = json.loads((save / "policies.json").read_text())
    assert len(policies["policies"]) == 39
    config = json.loads((save / "config.json").read_text())
    assert config["arch"] == "RANet" and config["data"] == "digits"

    trained = (save / "metrics.json").read_bytes()
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 0
    assert (save / "metrics.json").read_bytes() == trained  # eval writes its own file
    again = json.loads((save / "eval_metrics.json").read_text())
    for name in ("eval_policies.json", "eval_anytime.png", "eval_budgeted.png"):
        assert (save / name).is_file(), name
    assert again["anytime"] == metrics["anytime"]  # final model == best model after 1 epoch
    assert [r["accuracy"] for r in again["budgeted"]] == [
        r["accuracy"] for r in metrics["budgeted"]
    ]
    assert "evaluating" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_says_so_and_nan_keeps_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    save = tmp_path / "run"
    assert train(save, "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "thresholds are tuned on the test data" in err  # no --use-valid
    good = (save / LAST_CHECKPOINT).read_bytes()

    class NaNLoss(MultiExitLoss):
        def forward(self, logits: Any, target: Tensor) -> Tensor:
            return super().forward(logits, target) * float("nan")

    monkeypatch.setattr(train_command, "MultiExitLoss", NaNLoss)
    assert train(save, "--epochs", "2", "--resume") == 3
    captured = capsys.readouterr()
    assert "resumed from" in captured.out and "continuing at epoch 1 of 2" in captured.out
    assert "non-finite training loss" in captured.err and "epoch 1, batch 1/" in captured.err
    assert (save / LAST_CHECKPOINT).read_bytes() == good
    stored = torch.load(save / LAST_CHECKPOINT, weights_only=True)
    assert stored["next_epoch"] == 1


def test_save_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.txt"
    path.write_text("mine")
    assert train(path, "--epochs", "1") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["eval", "--save", str(path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert path.read_text() == "mine"


def test_start_epoch_beyond_epochs_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(tmp_path / "r", "--epochs", "3", "--start-epoch", "3") == 2
    assert "--start-epoch 3 leaves nothing to train with --epochs 3" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_rerunning_into_a_finished_run_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    before = snapshot(save)
    assert train(save, "--epochs", "1", "--use-valid", "--seed", "3") == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(save) == before


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        (["--seed", "4", "--use-valid"], "seed"),
        (["--seed", "3"], "use_valid"),
        (["--seed", "3", "--use-valid", "--data", "cifar10", "--data-root", "/nowhere"], "data"),
    ],
)
def test_a_resume_of_another_run_is_refused_before_anything_is_written(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changed: list[str],
    field: str,
) -> None:
    save = copy_run(finished_run, tmp_path)
    before = snapshot(save)
    common = ["--data", "digits", "-j", "0", "--print-freq", "0", "--no-progress"]
    code = cli.main(["train", *TINY, *common, "--save", str(save), "--epochs", "2", "--resume",
                     *changed])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--resume must continue the same run" in err and field in err
    assert snapshot(save) == before


def test_a_resume_from_another_data_root_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    settings = json.loads((save / "config.json").read_text())
    # As if the run had trained on CIFAR-10 read from /data/a.
    config = {**settings["config"], "num_classes": 10}
    write_json_atomic(
        save / "config.json",
        {**settings, "data": "cifar10", "data_root": "/data/a", "config": config},
    )
    before = snapshot(save)
    common = ["--data", "cifar10", "--use-valid", "--seed", "3", "--epochs", "2", "--resume"]
    assert cli.main(["train", *TINY, *common, "--save", str(save), "--data-root", "/data/b"]) == 2
    err = capsys.readouterr().err
    assert "--resume must continue the same run, but data_root differ" in err
    assert snapshot(save) == before
    # The same folder spelled differently is the same run (refused later, for lack of data).
    assert cli.main(["train", *TINY, *common, "--save", str(save), "--data-root",
                     "/data/b/../a"]) == 2  # fmt: skip
    assert "cannot load --data cifar10" in capsys.readouterr().err
    assert snapshot(save) == before


def test_a_corrupt_checkpoint_on_resume_is_reported(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    (save / LAST_CHECKPOINT).write_bytes(b"garbage")
    before = snapshot(save)
    assert train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "adanet: error:" in err and LAST_CHECKPOINT in err and "Traceback" not in err
    assert snapshot(save) == before


def test_resuming_a_finished_run_without_more_epochs_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    before = snapshot(save)
    assert train(save, "--epochs", "1", "--use-valid", "--seed", "3", "--resume") == 2
    assert "already holds 1 trained epochs" in capsys.readouterr().err
    assert snapshot(save) == before


@pytest.mark.slow
def test_a_resume_continues_cleans_stale_temporaries_and_keeps_the_earlier_settings(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = copy_run(finished_run, tmp_path)
    stale = save / ".checkpoint_last.pt.ab12cd34.tmp"  # as a killed atomic write leaves it
    stale.write_bytes(b"half")
    mine = save / "notes.md"
    mine.write_text("keep me")
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 0
    assert not stale.exists() and mine.read_text() == "keep me"
    settings = json.loads((save / "config.json").read_text())
    assert settings["epochs"] == 2 and settings["resume"] is True
    assert [s["epochs"] for s in settings["previous"]] == [1]
    lines = (save / METRICS_CSV).read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1"]


@pytest.mark.slow
def test_overwrite_replaces_the_run(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = copy_run(finished_run, tmp_path)
    (save / "eval_metrics.json").write_text("{}")  # an evaluation of the old model
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert train(save, "--epochs", "1", "--overwrite", "--seed", "5") == 0
    assert not (save / "eval_metrics.json").exists()
    assert json.loads((save / "config.json").read_text())["seed"] == 5
    assert "previous" not in json.loads((save / "config.json").read_text())


@pytest.mark.slow
def test_tensorboard_scalars_and_the_csv_log(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra")
    save = copy_run(finished_run, tmp_path)
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume",
                  "--tensorboard") == 0  # fmt: skip
    events = list((save / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert train(tmp_path / "r", "--epochs", "1", "--tensorboard") == 2
    assert 'pip install "adanet-torch[tensorboard]"' in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
