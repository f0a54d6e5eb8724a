"""The tiny digits run of the command-line tests, and what they check run folders with."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import adanet.cli as cli

__all__ = ["COMMON", "TINY", "copy_run", "evaluate", "parse", "read_json", "snapshot", "train"]

# A RANet small enough to train an epoch of digits in a second or two.
TINY = [
    "--arch", "RANet", "--nBlocks", "1", "--nChannels", "4", "--growthRate", "4",
    "--grFactor", "2-1", "--bnFactor", "2-1", "--block-step", "1", "--scale-list", "1-2",
    "--step", "1",
]  # fmt: skip
COMMON = ["--data", "digits", "-j", "0", "-b", "64", "--lr", "0.05", "--print-freq", "0"]


def parse(line: str) -> argparse.Namespace:
    """``adanet train`` with the options of ``line``, parsed."""
    return cli.build_parser().parse_args(["train", *line.split()])


def train(save: Path, *extra: str) -> int:
    """``adanet train`` of the tiny RANet on digits into ``save``; its exit status."""
    return cli.main(["train", *TINY, *COMMON, "--save", str(save), "--no-progress", *extra])


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of the run folder ``run`` under ``tmp_path``, to change without touching it."""
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of ``folder``: its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def evaluate(run: Path, *extra: str) -> int:
    """``adanet eval`` of the run folder ``run`` (anytime mode, replacing earlier results)."""
    return cli.main(
        ["eval", "--save", str(run), "-j", "0", "--evalmode", "anytime", "--overwrite", *extra]
    )


def read_json(run: Path, name: str = "metrics.json") -> Any:
    """The JSON document ``name`` of the run folder ``run``."""
    return json.loads((run / name).read_text())
