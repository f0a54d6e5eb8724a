"""Policies in ``adanet train``/``eval``: the timed budget, the guaranteed policy,
recorded context, and ``eval --policy SPEC``."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import adanet.cli as cli

_LATENCY_KEYS = {"images_per_second", "p50_batch_seconds", "p95_batch_seconds", "num_batches"}


def _metrics(run: Path, name: str = "metrics.json") -> Any:
    return json.loads((run / name).read_text())


def test_one_budget_is_timed_against_both_baselines(guaranteed_run: Path) -> None:
    metrics = _metrics(guaranteed_run)
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
    metrics = _metrics(guaranteed_run)
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


def _eval(run: Path, *extra: str) -> int:
    return cli.main(
        ["eval", "--save", str(run), "-j", "0", "--evalmode", "anytime", "--overwrite", *extra]
    )


@pytest.fixture
def run_copy(guaranteed_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(guaranteed_run, target)
    return target


def test_eval_runs_a_policy_json_file(run_copy: Path) -> None:
    saved = json.loads((run_copy / "policies.json").read_text())
    entry = saved["policies"][len(saved["policies"]) // 2]
    (run_copy / "mine.json").write_text(json.dumps(entry))
    assert _eval(run_copy, "--policy", str(run_copy / "mine.json")) == 0
    row = _metrics(run_copy, "eval_metrics.json")["policy"]
    assert row["spec"] == str(run_copy / "mine.json")
    budget = next(r for r in _metrics(run_copy)["budgeted"] if r["p"] == entry["p"])
    # The same weights and policy on the same test split: what training's evaluation found.
    assert row["accuracy"] == budget["accuracy"]
    assert row["mean_macs"] == pytest.approx(budget["mean_macs"])
    assert row["exit_fractions"] == pytest.approx(budget["exit_fractions"])
    assert set(row["latency"]) == {"policy", "all_exits", "last_exit"}


_CUSTOM = """
import torch


class EverybodyAtFirstExit:
    # Follows adanet.ExitDecider without subclassing anything of adanet's.
    num_exits = 2

    def initial_state(self, batch_size, device=None):
        return None

    def step(self, exit_index, logits, state):
        return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device), state

    def simulate(self, logits):
        return torch.zeros(logits[0].shape[0], dtype=torch.long)


INSTANCE = EverybodyAtFirstExit()
NOT_A_POLICY = 3


def broken():
    raise RuntimeError("no policy today")
"""


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "my_exit_policies.py").write_text(textwrap.dedent(_CUSTOM))
    monkeypatch.syspath_prepend(str(folder))
    yield "my_exit_policies"
    sys.modules.pop("my_exit_policies", None)


@pytest.mark.parametrize("name", ["INSTANCE", "EverybodyAtFirstExit"])
def test_eval_runs_a_policy_object_or_factory(
    run_copy: Path, custom_module: str, name: str
) -> None:
    assert _eval(run_copy, "--policy", f"{custom_module}:{name}") == 0
    metrics = _metrics(run_copy, "eval_metrics.json")
    row = metrics["policy"]
    assert row["exit_fractions"] == [1.0, 0.0]
    assert row["mean_macs"] == pytest.approx(metrics["anytime"][0]["macs"])
    assert row["accuracy"] == pytest.approx(metrics["anytime"][0]["top1"])
    assert metrics["latency"]["what"] == "--policy"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope.json", "no such file"),
        ("no_such_module_xyz:thing", "cannot import"),
        ("{module}:missing", "has no attribute"),
        ("{module}:NOT_A_POLICY", "must be an ExitDecider"),
        ("{module}:broken", "no policy today"),
        ("just-a-word", "package.module:name"),
    ],
)
def test_a_bad_policy_spec_is_a_usage_error(
    run_copy: Path,
    custom_module: str,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    message: str,
) -> None:
    assert _eval(run_copy, "--policy", spec.format(module=custom_module)) == 2
    err = capsys.readouterr().err
    assert err.startswith("adanet: error: --policy") and message in err
    assert not (run_copy / "eval_metrics.json").exists()


def test_a_policy_for_another_model_is_refused(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_copy / "three.json").write_text(json.dumps({"thresholds": [0.5, 0.5, "-inf"]}))
    assert _eval(run_copy, "--policy", str(run_copy / "three.json")) == 2
    assert "3 exits" in capsys.readouterr().err
    (run_copy / "bad.json").write_text("{not json")
    assert _eval(run_copy, "--policy", str(run_copy / "bad.json")) == 2
    assert "not a readable JSON file" in capsys.readouterr().err


def test_eval_calibrates_a_guarantee_with_another_method(run_copy: Path) -> None:
    assert _eval(run_copy, "--max-accuracy-drop", "0.1", "--risk-method", "crc") == 0
    risk = _metrics(run_copy, "eval_metrics.json")["risk_policy"]
    assert risk["method"] == "crc" and risk["delta"] is None and "temperatures" not in risk
    assert risk["num_calibration"] == _metrics(run_copy)["num_calibration"]
    saved = json.loads((run_copy / "eval_policies.json").read_text())
    assert saved["risk_policy"]["policy"] == risk["policy"]


def test_eval_refuses_a_guarantee_for_a_run_without_validation(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((run_copy / "config.json").read_text())
    config["use_valid"] = False
    (run_copy / "config.json").write_text(json.dumps(config))
    assert _eval(run_copy, "--max-accuracy-drop", "0.02") == 2
    assert "--use-valid" in capsys.readouterr().err
    assert not (run_copy / "eval_metrics.json").exists()


@pytest.mark.parametrize(
    ("body", "raised"),
    [
        ("raise RuntimeError('no GPU here')", "RuntimeError: no GPU here"),
        ("def broken(:\n    pass", "SyntaxError"),
        ("import sys\nsys.exit(3)", "SystemExit: 3"),
        ("x = 1 / 0", "ZeroDivisionError"),
    ],
)
def test_a_policy_module_failing_on_import_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, raised: str
) -> None:
    from adanet.cli.errors import CLIError
    from adanet.cli.policy_spec import load_policy

    (tmp_path / "failing_policy_module.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(CLIError, match=f"importing 'failing_policy_module' failed: {raised}"):
            load_policy("failing_policy_module:POLICY")
    finally:
        sys.modules.pop("failing_policy_module", None)


def test_a_failing_import_exits_with_status_2(
    run_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "exploding_policy.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert _eval(run_copy, "--policy", "exploding_policy:POLICY") == 2
    finally:
        sys.modules.pop("exploding_policy", None)
    assert capsys.readouterr().err.startswith("adanet: error: --policy")
