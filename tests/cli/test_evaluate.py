"""adanet.cli.evaluate: ``adanet eval`` writes its own files and keeps an earlier evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import adanet.cli as cli
from cli_runs import copy_run, snapshot


def test_eval_writes_its_own_files_and_keeps_an_earlier_evaluation(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = copy_run(finished_run, tmp_path)
    trained = snapshot(save)
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
