"""adanet.cli.run_evaluation: computing, reporting and writing an evaluation are separate steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import adanet.cli as cli
from cli_runs import TINY, parse


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
    model = RANet(cli.build_config(parse(" ".join(["--data", "digits", *TINY])))[1])
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
