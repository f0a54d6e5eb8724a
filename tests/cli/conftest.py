"""A tiny digits run shared by the command-line tests of this folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import adanet.cli.train as train_command
from adanet._atomic import write_json_atomic
from cli_runs import copy_run, train


@pytest.fixture
def train_cli() -> Callable[..., int]:
    """:func:`train`, for the tests of this folder."""
    return train


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here on one thread: small convolutions only contend for the cores."""


@pytest.fixture(scope="session")
def guaranteed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch with a validation split, evaluated in full with a guaranteed policy."""
    save = tmp_path_factory.mktemp("cli") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = train(
            save, "--epochs", "1", "--use-valid", "--max-accuracy-drop", "0.05", "--temperatures"
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return save


@pytest.fixture
def run_copy(guaranteed_run: Path, tmp_path: Path) -> Path:
    """A copy of :func:`guaranteed_run` that a test may change."""
    return copy_run(guaranteed_run, tmp_path)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run with a validation split and seed 3, its final evaluation replaced by a
    stub that writes ``metrics.json``; tests change copies of it (``cli_runs.copy_run``)."""
    save = tmp_path_factory.mktemp("finished") / "run"

    def quick_evaluation(
        model: object, loaders: object, shape: object, folder: Path, **_: object
    ) -> dict[str, object]:
        write_json_atomic(Path(folder) / "metrics.json", {"stub": True})
        return {}

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_command, "evaluate_run", quick_evaluation)
        torch.set_num_threads(1)
        try:
            assert train(save, "--epochs", "1", "--use-valid", "--seed", "3") == 0
        finally:
            torch.set_num_threads(threads)
    return save
