"""Tests for adanet.cli.console: the :class:`Printer` every command prints through. It writes
its parts as ``print`` would (space-separated, one newline) to stdout, or to stderr with
``error=True``, flushing each line so the command's output interleaves in order with other
writers; a disabled printer (every rank but 0 of a distributed run) writes nothing at all. The
stream is looked up at each call, so a redirected ``sys.stdout`` or ``sys.stderr`` is used."""

from __future__ import annotations

import io
import sys

import pytest

from adanet.cli.console import Printer


class CountingStream(io.StringIO):
    """A text stream that counts how often it was flushed, and what it held at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())
        super().flush()


def test_an_enabled_printer_writes_its_parts_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    Printer(True)("epoch", 3, "of", 10)
    captured = capsys.readouterr()
    assert captured.out == "epoch 3 of 10\n"
    assert captured.err == ""


def test_errors_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    Printer(True)("adanet: error:", "bad", error=True)
    captured = capsys.readouterr()
    assert captured.err == "adanet: error: bad\n"
    assert captured.out == ""


def test_parts_of_any_type_are_printed_as_str(capsys: pytest.CaptureFixture[str]) -> None:
    Printer(True)(1, 2.5, None, [1, "a"], ("x",))
    assert capsys.readouterr().out == "1 2.5 None [1, 'a'] ('x',)\n"


def test_no_parts_print_an_empty_line(capsys: pytest.CaptureFixture[str]) -> None:
    say = Printer(True)
    say()
    say(error=True)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("\n", "\n")


def test_error_is_keyword_only(capsys: pytest.CaptureFixture[str]) -> None:
    # A positional True is one more part to print, not a request for stderr.
    Printer(True)("flag", True)
    captured = capsys.readouterr()
    assert captured.out == "flag True\n" and captured.err == ""


def test_a_disabled_printer_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    say = Printer(False)
    say("progress", 1)
    say("adanet: error: hidden", error=True)
    say()
    assert capsys.readouterr() == ("", "")


def test_enabled_can_be_switched_after_construction(capsys: pytest.CaptureFixture[str]) -> None:
    say = Printer(False)
    assert say.enabled is False
    say("before")
    say.enabled = True
    say("after")
    say.enabled = False
    say("again")
    assert capsys.readouterr().out == "after\n"


@pytest.mark.parametrize("error", [False, True])
def test_every_call_flushes_its_stream_after_writing(
    monkeypatch: pytest.MonkeyPatch, error: bool
) -> None:
    used, unused = CountingStream(), CountingStream()
    monkeypatch.setattr(sys, "stderr" if error else "stdout", used)
    monkeypatch.setattr(sys, "stdout" if error else "stderr", unused)
    say = Printer(True)
    say("one", error=error)
    say("two", error=error)
    # One flush per call, each after its whole line was written.
    assert used.flushed == ["one\n", "one\ntwo\n"]
    assert unused.getvalue() == "" and unused.flushed == []


def test_a_disabled_printer_does_not_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = CountingStream(), CountingStream()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    Printer(False)("quiet")
    Printer(False)("quiet", error=True)
    assert out.flushed == [] and err.flushed == []


def test_the_stream_is_looked_up_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    say = Printer(True)  # made before the redirection
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    say("to first")
    monkeypatch.setattr(sys, "stdout", second)
    say("to second")
    assert first.getvalue() == "to first\n"
    assert second.getvalue() == "to second\n"
