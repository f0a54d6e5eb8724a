"""A tiny digits run shared by the command-line tests of this folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import adanet.cli as cli
import adanet.cli.train as train_command
from adanet._atomic import write_json_atomic

# A RANet small enough to train an epoch of digits in a second or two.
TINY = [
    "--arch", "RANet", "--nBlocks", "1", "--nChannels", "4", "--growthRate", "4",
    "--grFactor", "2-1", "--bnFactor", "2-1", "--block-step", "1", "--scale-list", "1-2",
    "--step", "1",
]  # fmt: skip
COMMON = ["--data", "digits", "-j", "0", "-b", "64", "--lr", "0.05", "--print-freq", "0"]


def train(save: Path, *extra: str) -> int:
    """``adanet train`` of the tiny RANet on digits into ``save``."""
    return cli.main(["train", *TINY, *COMMON, "--save", str(save), "--no-progress", *extra])


@pytest.fixture
def train_cli() -> Callable[..., int]:
    """:func:`train`, for the tests of this folder."""
    return train


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Small convolutions gain nothing from a second thread on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
