"""adanet.cli.runtime: loading a run's data and settings, with errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

import adanet.cli as cli
from cli_runs import copy_run, snapshot, train


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


def test_a_corrupt_config_json_is_reported_not_raised(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    (save / "config.json").write_text("{not json")
    before = snapshot(save)
    assert train(save, "--epochs", "2", "--use-valid", "--seed", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "adanet: error: cannot read the run settings" in err and "Traceback" not in err
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 2
    assert "cannot read the run settings" in capsys.readouterr().err
    (save / "config.json").write_text("[1, 2]")
    assert cli.main(["eval", "--save", str(save), "-j", "0"]) == 2
    assert "not a JSON object" in capsys.readouterr().err
    (save / "config.json").write_text("{not json")
    assert {k: v[0] for k, v in snapshot(save).items()} == {k: v[0] for k, v in before.items()}
