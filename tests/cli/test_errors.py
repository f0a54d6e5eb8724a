"""Tests for adanet.cli.errors: :class:`CLIError`, the exception a command raises for a
mistake in its command line or inputs. It is a plain ``Exception`` carrying its message, and
:func:`adanet.cli.main` turns it into exit status 2 with ``adanet: error: <message>`` on stderr
and no traceback (printed by rank 0 only), leaving the process group cleaned up; exceptions of
other kinds are not disguised as usage errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest
import torch

import adanet.cli as cli
import adanet.cli.evaluate as evaluate_command
from adanet.cli.console import Printer
from adanet.cli.errors import CLIError
from adanet.training.distributed import DistributedContext

Run = Callable[[argparse.Namespace, DistributedContext, Printer], int]


def failing_run(error: BaseException) -> Run:
    """A sub-command ``run`` that raises ``error``."""

    def run(args: argparse.Namespace, ctx: DistributedContext, say: Printer) -> int:
        raise error

    return run


def test_a_cli_error_is_a_plain_exception_carrying_its_message() -> None:
    error = CLIError("--save 'x' is a file, not a folder")
    assert isinstance(error, Exception)
    assert str(error) == "--save 'x' is a file, not a folder"
    assert error.args == ("--save 'x' is a file, not a folder",)
    # Not a ValueError or OSError: main() tells a usage error apart from other failures.
    assert not isinstance(error, ValueError | OSError | TypeError)
    with pytest.raises(CLIError, match="not a folder"):
        raise error


def test_the_package_exports_the_same_class() -> None:
    assert cli.CLIError is CLIError
    assert "CLIError" in cli.__all__


def test_main_reports_a_cli_error_as_status_2_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(evaluate_command, "run", failing_run(CLIError("no checkpoint at x")))
    assert cli.main(["eval"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "adanet: error: no checkpoint at x\n"
    assert captured.out == ""


def test_a_chained_cli_error_prints_only_its_own_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise KeyError("inner detail")
    except KeyError as inner:
        outer = CLIError("cannot read the run settings")
        outer.__cause__ = inner
    monkeypatch.setattr(evaluate_command, "run", failing_run(outer))
    assert cli.main(["eval"]) == 2
    err = capsys.readouterr().err
    assert err == "adanet: error: cannot read the run settings\n"
    assert "Traceback" not in err and "inner detail" not in err


def test_a_real_command_line_mistake_exits_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # ``adanet eval`` with neither a run folder nor a checkpoint fails before loading anything.
    assert cli.main(["eval"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("adanet: error: adanet eval needs --save DIR")
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_other_exceptions_are_not_turned_into_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(evaluate_command, "run", failing_run(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["eval"])
    assert "adanet: error" not in capsys.readouterr().err


def test_only_rank_0_prints_the_error_but_every_rank_exits_with_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def second_rank(device: object = None) -> DistributedContext:
        return DistributedContext(
            rank=1, local_rank=1, world_size=2, device=torch.device("cpu"), backend=None
        )

    monkeypatch.setattr(cli, "init_distributed", second_rank)
    monkeypatch.setattr(evaluate_command, "run", failing_run(CLIError("bad --policy")))
    assert cli.main(["eval"]) == 2
    assert capsys.readouterr() == ("", "")


def test_the_process_group_is_cleaned_up_after_a_cli_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "cleanup_distributed", lambda: calls.append("cleanup"))
    monkeypatch.setattr(evaluate_command, "run", failing_run(CLIError("bad")))
    assert cli.main(["eval"]) == 2
    assert calls == ["cleanup"]
    capsys.readouterr()
