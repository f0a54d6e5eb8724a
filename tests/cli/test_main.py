"""Tests of the ``adanet`` command line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import adanet.cli as cli
import adanet.cli.train as train_command
from adanet import RANetConfig
from adanet._atomic import write_json_atomic
from adanet.compat import read_reference_config
from adanet.training import BEST_MODEL, LAST_CHECKPOINT, METRICS_CSV
from adanet.training.losses import MultiExitLoss


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
    assert read_reference_config(arch="RANet", path_or_text=line) == config


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
    assert _train(save, "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "thresholds are tuned on the test data" in err  # no --use-valid
    good = (save / LAST_CHECKPOINT).read_bytes()

    class NaNLoss(MultiExitLoss):
        def forward(self, logits: Any, target: Tensor) -> Tensor:
            return super().forward(logits, target) * float("nan")

    monkeypatch.setattr(train_command, "MultiExitLoss", NaNLoss)
    assert _train(save, "--epochs", "2", "--resume") == 3
    captured = capsys.readouterr()
    assert "resumed from" in captured.out and "continuing at epoch 1 of 2" in captured.out
    assert "non-finite training loss" in captured.err and "epoch 1, batch 1/" in captured.err
    assert (save / LAST_CHECKPOINT).read_bytes() == good
    stored = torch.load(save / LAST_CHECKPOINT, weights_only=True)
    assert stored["next_epoch"] == 1


# ------------------------------------------------------------------ user mistakes, no traceback


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("-b", "0", "must be >= 1, got 0"),
        ("--batch-size", "two", "expected an integer, got 'two'"),
        ("--lr", "-1", "must be a finite number > 0"),
        ("--lr", "nan", "must be a finite number > 0"),
        ("--seed", "-1", "must be >= 0, got -1"),
        ("--seed", str(2**32), "must be < 2**32"),
        ("--epochs", "0", "must be >= 1, got 0"),
        ("--start-epoch", "-2", "must be >= 0"),
        ("-j", "-1", "must be >= 0, got -1"),
        ("--momentum", "-0.5", "must be a finite number >= 0"),
        ("--weight-decay", "inf", "must be a finite number >= 0"),
        ("--decay-rate", "0", "must be a finite number > 0"),
        ("--print-freq", "-3", "must be >= 0"),
        ("--grFactor", "4-x-1", "must look like '4-2-1'"),
    ],
)
def test_bad_values_are_usage_errors(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--data", "digits", option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "adanet train: error:" in err and message in err
    assert "Traceback" not in err


def test_bn_after_can_be_turned_off_and_the_original_flag_still_works() -> None:
    assert cli.build_config(_parse("--data digits"))[1].bn_after is True
    assert cli.build_config(_parse("--data digits --bnAfter"))[1].bn_after is True
    assert cli.build_config(_parse("--data digits --no-bnAfter"))[1].bn_after is False


def test_an_option_the_architecture_lacks_is_an_error_not_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["train", "--data", "digits", "--base", "3"]) == 2
    assert "--base does not apply to --arch RANet" in capsys.readouterr().err
    assert cli.main(["train", "--data", "digits", "--arch", "msdnet", "--no-bnAfter"]) == 2
    assert "--bnAfter does not apply to --arch msdnet" in capsys.readouterr().err


def test_a_zero_channel_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["train", *TINY, "--data", "digits", "-j", "0", "--reduction", "0.01", "--save",
                     str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "adanet: error:" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_save_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.txt"
    path.write_text("mine")
    assert _train(path, "--epochs", "1") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["eval", "--save", str(path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert path.read_text() == "mine"


def test_start_epoch_beyond_epochs_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(tmp_path / "r", "--epochs", "3", "--start-epoch", "3") == 2
    assert "--start-epoch 3 leaves nothing to train with --epochs 3" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- runs that keep their work


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A one-epoch run (its final evaluation replaced by a stub that writes metrics.json)."""
    save = tmp_path_factory.mktemp("finished") / "run"

    def quick_evaluation(model: Any, loaders: Any, shape: Any, folder: Path, **_: Any) -> Any:
        write_json_atomic(Path(folder) / "metrics.json", {"stub": True})
        return {}

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_command, "evaluate_run", quick_evaluation)
        torch.set_num_threads(1)
        try:
            assert _train(save, "--epochs", "1", "--use-valid", "--seed", "3") == 0
        finally:
            torch.set_num_threads(threads)
    yield save


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_rerunning_into_a_finished_run_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    before = _snapshot(save)
    assert _train(save, "--epochs", "1", "--use-valid", "--seed", "3") == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(save) == before


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
    save = _copy(finished_run, tmp_path)
    before = _snapshot(save)
    common = ["--data", "digits", "-j", "0", "--print-freq", "0", "--no-progress"]
    code = cli.main(["train", *TINY, *common, "--save", str(save), "--epochs", "2", "--resume",
                     *changed])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--resume must continue the same run" in err and field in err
    assert _snapshot(save) == before


def test_a_resume_from_another_data_root_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    settings = json.loads((save / "config.json").read_text())
    # As if the run had trained on CIFAR-10 read from /data/a.
    config = {**settings["config"], "num_classes": 10}
    write_json_atomic(
        save / "config.json",
        {**settings, "data": "cifar10", "data_root": "/data/a", "config": config},
    )
    before = _snapshot(save)
    common = ["--data", "cifar10", "--use-valid", "--seed", "3", "--epochs", "2", "--resume"]
    assert cli.main(["train", *TINY, *common, "--save", str(save), "--data-root", "/data/b"]) == 2
    err = capsys.readouterr().err
    assert "--resume must continue the same run, but data_root differ" in err
    assert _snapshot(save) == before
    # The same folder spelled differently is the same run (refused later, for lack of data).
    assert cli.main(["train", *TINY, *common, "--save", str(save), "--data-root",
                     "/data/b/../a"]) == 2  # fmt: skip
    assert "cannot load --data cifar10" in capsys.readouterr().err
    assert _snapshot(save) == before


def test_a_corrupt_config_json_is_reported_not_raised(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    (save / "config.json").write_text("{not json")
    before = _snapshot(save)
    assert _train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "adanet: error: cannot read the run settings" in err and "Traceback" not in err
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 2
    assert "cannot read the run settings" in capsys.readouterr().err
    (save / "config.json").write_text("[1, 2]")
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 2
    assert "not a JSON object" in capsys.readouterr().err
    (save / "config.json").write_text("{not json")
    assert {k: v[0] for k, v in _snapshot(save).items()} == {k: v[0] for k, v in before.items()}


def test_a_corrupt_checkpoint_on_resume_is_reported(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    (save / LAST_CHECKPOINT).write_bytes(b"garbage")
    before = _snapshot(save)
    assert _train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "adanet: error:" in err and LAST_CHECKPOINT in err and "Traceback" not in err
    assert _snapshot(save) == before


def test_resuming_a_finished_run_without_more_epochs_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    before = _snapshot(save)
    assert _train(save, "--epochs", "1", "--use-valid", "--seed", "3", "--resume") == 2
    assert "already holds 1 trained epochs" in capsys.readouterr().err
    assert _snapshot(save) == before


@pytest.mark.slow
def test_a_resume_continues_cleans_stale_temporaries_and_keeps_the_earlier_settings(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = _copy(finished_run, tmp_path)
    stale = save / ".checkpoint_last.pt.ab12cd34.tmp"  # as a killed atomic write leaves it
    stale.write_bytes(b"half")
    mine = save / "notes.md"
    mine.write_text("keep me")
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert _train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 0
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
    save = _copy(finished_run, tmp_path)
    (save / "eval_metrics.json").write_text("{}")  # an evaluation of the old model
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert _train(save, "--epochs", "1", "--overwrite", "--seed", "5") == 0
    assert not (save / "eval_metrics.json").exists()
    assert json.loads((save / "config.json").read_text())["seed"] == 5
    assert "previous" not in json.loads((save / "config.json").read_text())


def test_eval_writes_its_own_files_and_keeps_an_earlier_evaluation(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = _copy(finished_run, tmp_path)
    trained = _snapshot(save)
    command = ["eval", "--save", str(save), "-j", "0", "--evalmode", "anytime"]
    assert cli.main(command) == 0
    metrics = json.loads((save / "eval_metrics.json").read_text())
    assert metrics["data"] == "digits" and len(metrics["anytime"]) == 2
    assert "budgeted" not in metrics
    for name, content in trained.items():
        assert (save / name).read_bytes() == content[0], name  # the run's files untouched
    evaluated = (save / "eval_metrics.json").read_bytes()
    capsys.readouterr()
    assert cli.main(command) == 2
    assert "already holds an evaluation" in capsys.readouterr().err
    assert (save / "eval_metrics.json").read_bytes() == evaluated
    assert cli.main([*command, "--overwrite"]) == 0


@pytest.mark.slow
def test_tensorboard_scalars_and_the_csv_log(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra")
    save = _copy(finished_run, tmp_path)
    monkeypatch.setattr(train_command, "evaluate_run", lambda *a, **k: {})
    assert _train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume",
                  "--tensorboard") == 0  # fmt: skip
    events = list((save / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert _train(tmp_path / "r", "--epochs", "1", "--tensorboard") == 2
    assert 'pip install "adanet-torch[tensorboard]"' in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------- spec and evaluation steps


def test_the_run_spec_is_built_once_and_leaves_the_namespace_alone(
    finished_run: Path,
) -> None:
    import dataclasses

    from adanet.cli.spec import RunSpec

    args = _parse("--data digits --nBlocks 1 --seed 7")
    before = dict(vars(args))
    spec = RunSpec.from_args(args)
    assert vars(args) == before
    assert spec.seed == 7 and spec.data == "digits" and spec.use_valid is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 8  # type: ignore[misc]
    saved = json.loads((finished_run / "config.json").read_text())
    assert set(saved) == set(spec.to_dict())  # config.json is the spec, as it is
    assert saved["seed"] == 3 and saved["use_valid"] is True and saved["config"]["num_blocks"] == 1


def test_evaluation_is_computed_reported_and_written_separately(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.data import DataLoader, Subset

    from adanet import RANet
    from adanet.cli.run_evaluation import (
        compute_run_evaluation,
        report_run_evaluation,
        write_run_evaluation,
    )
    from adanet.data import DataLoaders, digits_datasets

    splits = digits_datasets(seed=0)
    test = DataLoader(Subset(splits.test, range(64)), batch_size=32)
    model = RANet(cli.build_config(_parse(" ".join(["--data", "digits", *TINY])))[1])
    evaluation = compute_run_evaluation(
        model, DataLoaders(test, None, test), (3, 32, 32), evalmode="anytime", info={"k": 1}
    )
    assert capsys.readouterr().out == ""  # computing prints nothing
    assert [r.exit for r in evaluation.test.records] == [0, 1]
    report_run_evaluation(evaluation, print)
    assert "Anytime prediction" in capsys.readouterr().out
    written = write_run_evaluation(evaluation, tmp_path, prefix="x_", say=lambda *a: None)
    names = sorted(p.name for p in written)
    assert "x_metrics.json" in names and "x_policies.json" not in names
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    metrics = json.loads((tmp_path / "x_metrics.json").read_text())
    assert metrics["k"] == 1 and metrics["num_test"] == 64 and "budgeted" not in metrics
