"""``adanet eval --policy SPEC`` (adanet.cli.policy_spec): a policy from a JSON file, a module
object or a factory, and a clear usage error for every spec that cannot give one."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runs import evaluate, read_json


def test_eval_runs_a_policy_json_file(run_copy: Path) -> None:
    saved = json.loads((run_copy / "policies.json").read_text())
    entry = saved["policies"][len(saved["policies"]) // 2]
    (run_copy / "mine.json").write_text(json.dumps(entry))
    assert evaluate(run_copy, "--policy", str(run_copy / "mine.json")) == 0
    row = read_json(run_copy, "eval_metrics.json")["policy"]
    assert row["spec"] == str(run_copy / "mine.json")
    budget = next(r for r in read_json(run_copy)["budgeted"] if r["p"] == entry["p"])
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
    assert evaluate(run_copy, "--policy", f"{custom_module}:{name}") == 0
    metrics = read_json(run_copy, "eval_metrics.json")
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
    assert evaluate(run_copy, "--policy", spec.format(module=custom_module)) == 2
    err = capsys.readouterr().err
    assert err.startswith("adanet: error: --policy") and message in err
    assert not (run_copy / "eval_metrics.json").exists()


def test_a_policy_for_another_model_is_refused(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_copy / "three.json").write_text(json.dumps({"thresholds": [0.5, 0.5, "-inf"]}))
    assert evaluate(run_copy, "--policy", str(run_copy / "three.json")) == 2
    assert "3 exits" in capsys.readouterr().err
    (run_copy / "bad.json").write_text("{not json")
    assert evaluate(run_copy, "--policy", str(run_copy / "bad.json")) == 2
    assert "not a readable JSON file" in capsys.readouterr().err


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
        assert evaluate(run_copy, "--policy", "exploding_policy:POLICY") == 2
    finally:
        sys.modules.pop("exploding_policy", None)
    assert capsys.readouterr().err.startswith("adanet: error: --policy")
