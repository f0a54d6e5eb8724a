"""adanet.cli.options: bad option values are usage errors, never tracebacks."""

from __future__ import annotations

import pytest

import adanet.cli as cli


def test_unknown_dataset_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--data", "mnist"])
    assert caught.value.code == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err


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
