"""Tests of the ``adanet`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import adanet.cli as cli
from adanet import RANetConfig
from adanet.losses import MultiExitLoss
from adanet.training import BEST_MODEL, LAST_CHECKPOINT


# A RANet small enough to train an epoch of digits in a second or two.
@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Small convolutions gain nothing from a second thread, and under pytest-xdist on a busy
    # two-core machine spinning OpenMP threads slow them down many times over.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = [
    "--arch", "RANet", "--nBlocks", "1", "--nChannels", "4", "--growthRate", "4",
    "--grFactor", "2-1", "--bnFactor", "2-1", "--block-step", "1", "--scale-list", "1-2",
    "--step", "1",
]  # fmt: skip


def _parse(line: str) -> Any:
    return cli.build_parser().parse_args(["train", *line.split()])


def test_original_command_line_builds_the_published_config() -> None:
    args = _parse(
        "--arch RANet --data-root /x --data cifar10 --step 4 --stepmode even "
        "--scale-list 1-2-3-3 --grFactor 4-2-1-1 --bnFactor 4-2-1-1"
    )
    arch, config = cli.build_config(args)
    assert arch == "RANet"
    assert config == RANetConfig.preset("cifar10")


def test_defaults_are_the_originals_and_data_sets_classes() -> None:
    _, config = cli.build_config(_parse("--data cifar100"))
    assert config == RANetConfig(num_classes=100)  # args.py defaults: 2 blocks, 4-2-1, ...
    _, imagenet = cli.build_config(_parse("--data imagenet --preset imagenet"))
    assert imagenet == RANetConfig.preset("imagenet")


def test_preset_then_explicit_flags_override() -> None:
    _, config = cli.build_config(_parse("--preset cifar10 --nBlocks 3 --data digits"))
    expected = RANetConfig.from_dict({**RANetConfig.preset("cifar10").to_dict(), "num_blocks": 3})
    assert config == expected
    assert config.variant == "cifar" and config.num_classes == 10


def test_args_txt_reads_back_with_from_reference_args() -> None:
    args = _parse("--data cifar10 --preset cifar10_budgeted --growthRate 8 --data-root /x")
    arch, config = cli.build_config(args)
    line = cli.reference_args_line(args, arch, config)
    assert line.startswith("Namespace(")
    assert RANetConfig.from_reference_args(line) == config


def test_msdnet_is_available_when_importable() -> None:
    msdnet = pytest.importorskip("adanet.models.msdnet_config")
    arch, config = cli.build_config(_parse("--arch msdnet --preset cifar10_anytime"))
    assert arch == "msdnet"
    assert config == msdnet.MSDNetConfig.preset("cifar10_anytime")


def test_unknown_dataset_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--data", "mnist"])
    assert caught.value.code == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err


def test_missing_cifar_folder_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["train", "--data", "cifar10", "--data-root", str(tmp_path), "--save", str(tmp_path / "s")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "CIFAR-10 not found" in err and "cifar-10-batches-py" in err
    code = cli.main(["train", "--data", "cifar10", "--save", str(tmp_path / "s")])
    assert code == 2
    assert "needs --data-root" in capsys.readouterr().err


def test_unknown_arch_and_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--arch", "resnet", "--data", "digits"]) == 2
    assert "unknown --arch 'resnet'" in capsys.readouterr().err
    assert cli.main(["train", "--preset", "nope", "--data", "digits"]) == 2
    assert "unknown RANet preset 'nope'" in capsys.readouterr().err


def _train(save: Path, *extra: str) -> int:
    common = ["--data", "digits", "-j", "0", "-b", "64", "--lr", "0.05", "--print-freq", "0"]
    return cli.main(["train", *TINY, *common, "--save", str(save), "--no-progress", *extra])


@pytest.mark.slow
def test_train_writes_the_run_folder_and_eval_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = tmp_path / "run"
    assert _train(save, "--epochs", "1", "--use-valid") == 0
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

    (save / "metrics.json").unlink()
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 0
    again = json.loads((save / "metrics.json").read_text())
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
    assert _train(save, "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "thresholds are tuned on the test data" in err  # no --use-valid
    good = (save / LAST_CHECKPOINT).read_bytes()

    class NaNLoss(MultiExitLoss):
        def forward(self, logits: Any, target: Tensor) -> Tensor:
            return super().forward(logits, target) * float("nan")

    monkeypatch.setattr(cli, "MultiExitLoss", NaNLoss)
    assert _train(save, "--epochs", "2", "--resume") == 3
    captured = capsys.readouterr()
    assert "resumed from" in captured.out and "continuing at epoch 1 of 2" in captured.out
    assert "non-finite training loss" in captured.err and "epoch 1, batch 1/" in captured.err
    assert (save / LAST_CHECKPOINT).read_bytes() == good
    stored = torch.load(save / LAST_CHECKPOINT, weights_only=True)
    assert stored["next_epoch"] == 1
