"""Policies in ``adanet train``/``eval`` (adanet.cli.policy_runs): the budget timed against
both baselines, the recorded context, and the guaranteed policy and its options."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import adanet.cli as cli
from cli_runs import evaluate, read_json

_LATENCY_KEYS = {"images_per_second", "p50_batch_seconds", "p95_batch_seconds", "num_batches"}


def test_one_budget_is_timed_against_both_baselines(guaranteed_run: Path) -> None:
    metrics = read_json(guaranteed_run)
    latency = metrics["latency"]
    ps = [row["p"] for row in metrics["budgeted"]]
    assert latency["p"] == min(ps, key=lambda p: abs(p - 1.0))
    for key in ("policy", "all_exits", "last_exit"):
        assert set(latency[key]) == _LATENCY_KEYS, key
        assert latency[key]["images_per_second"] > 0
        assert 0 < latency[key]["p50_batch_seconds"] <= latency[key]["p95_batch_seconds"]
    assert all(row["seconds_per_image"] > 0 for row in metrics["budgeted"])


def test_saved_policies_record_the_cost_convention_and_input_size(guaranteed_run: Path) -> None:
    saved = json.loads((guaranteed_run / "policies.json").read_text())
    for entry in [*saved["policies"], saved["risk_policy"]]:
        policy = entry["policy"]
        assert policy["cost_convention"] == "actual"
        assert policy["input_size"] == [32, 32]  # digits are upsampled to 32x32
        assert policy["num_classes"] == 10


def test_the_guaranteed_policy_is_reported_next_to_the_budgets(guaranteed_run: Path) -> None:
    metrics = read_json(guaranteed_run)
    risk = metrics["risk_policy"]
    assert risk["method"] == "ltt" and risk["max_accuracy_drop"] == 0.05 and risk["delta"] == 0.1
    assert risk["last_exit_accuracy"] == metrics["anytime"][-1]["top1"]
    assert risk["accuracy_drop"] == pytest.approx(risk["last_exit_accuracy"] - risk["accuracy"])
    assert metrics["anytime"][0]["macs"] <= risk["mean_macs"] <= metrics["full_macs"]
    assert sum(risk["exit_fractions"]) == pytest.approx(1.0)
    temperatures = risk["temperatures"]
    assert len(temperatures["values"]) == 2 and all(t > 0 for t in temperatures["values"])
    assert risk["policy"]["temperatures"] == temperatures["values"]
    assert len(temperatures["test_ece_before"]) == len(temperatures["test_ece_after"]) == 2
    # Fitted and calibrated on disjoint halves of the validation split.
    assert temperatures["num_fitted_on"] + risk["num_calibration"] == metrics["num_calibration"]
    assert abs(temperatures["num_fitted_on"] - risk["num_calibration"]) <= 1
    saved = json.loads((guaranteed_run / "policies.json").read_text())["risk_policy"]
    assert saved["policy"] == risk["policy"] and saved["accuracy"] == risk["accuracy"]


def test_calibrating_a_guarantee_on_test_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train_cli: Callable[..., int]
) -> None:
    assert train_cli(tmp_path / "r", "--epochs", "1", "--max-accuracy-drop", "0.02") == 2
    assert "--use-valid" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-accuracy-drop", "0"), ("--max-accuracy-drop", "1.5"), ("--delta", "1"),
     ("--risk-method", "bonferroni")],
)  # fmt: skip
def test_bad_guarantee_values_are_usage_errors(option: str, value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--data", "digits", option, value])
    assert exit_info.value.code == 2


def test_temperatures_need_a_guaranteed_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train_cli: Callable[..., int]
) -> None:
    assert train_cli(tmp_path / "r", "--epochs", "1", "--use-valid", "--temperatures") == 2
    assert "--max-accuracy-drop" in capsys.readouterr().err


def test_eval_calibrates_a_guarantee_with_another_method(run_copy: Path) -> None:
    assert evaluate(run_copy, "--max-accuracy-drop", "0.1", "--risk-method", "crc") == 0
    risk = read_json(run_copy, "eval_metrics.json")["risk_policy"]
    assert risk["method"] == "crc" and risk["delta"] is None and "temperatures" not in risk
    assert risk["num_calibration"] == read_json(run_copy)["num_calibration"]
    saved = json.loads((run_copy / "eval_policies.json").read_text())
    assert saved["risk_policy"]["policy"] == risk["policy"]


def test_eval_refuses_a_guarantee_for_a_run_without_validation(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((run_copy / "config.json").read_text())
    config["use_valid"] = False
    (run_copy / "config.json").write_text(json.dumps(config))
    assert evaluate(run_copy, "--max-accuracy-drop", "0.02") == 2
    assert "--use-valid" in capsys.readouterr().err
    assert not (run_copy / "eval_metrics.json").exists()
