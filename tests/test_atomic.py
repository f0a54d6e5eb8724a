"""Tests of adanet._atomic, the one writer of every file adanet writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from adanet import _atomic
from adanet._atomic import (
    atomic_path,
    save_torch_atomic,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "args.txt"
    write_text_atomic(target, "old\n")

    def dying_replace(source: str | Path, destination: str | Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["args.txt"]


def test_an_exception_inside_atomic_path_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "anytime.png"
    target.write_bytes(b"old plot")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half a plot")
        raise RuntimeError("plotting failed")
    assert target.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["anytime.png"]


def test_a_planted_link_at_the_old_fixed_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    # The old code wrote through ".<name>.tmp": a link planted there redirected the write.
    (folder / ".metrics.json.tmp").symlink_to(victim)
    write_json_atomic(folder / "metrics.json", {"top1": 0.5})
    assert victim.read_text() == "precious"
    assert (folder / "metrics.json").read_text() == '{\n  "top1": 0.5\n}\n'


def test_temporary_names_are_fresh_each_time(tmp_path: Path) -> None:
    names = set()
    for _ in range(3):
        with atomic_path(tmp_path / "config.json") as temporary:
            names.add(temporary.name)
            temporary.write_text("{}")
    assert len(names) == 3
    assert all(n.startswith(".config.json.") and n.endswith(".tmp") for n in names)


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "args.txt", "x")
    mask = os.umask(0o022)
    os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "args.txt").stat().st_mode)
    assert mode == 0o666 & ~mask  # not mkstemp's private 0600


def test_csv_cells_are_quoted_when_needed(tmp_path: Path) -> None:
    write_csv_atomic(
        tmp_path / "metrics.csv",
        ["epoch", "note", "lr"],
        [{"epoch": 0, "note": 'a, "b"', "lr": 0.1}, {"epoch": 1}],
    )
    assert (tmp_path / "metrics.csv").read_text() == ('epoch,note,lr\n0,"a, ""b""",0.1\n1,,\n')


def test_save_torch_atomic_replaces_and_survives_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.pt"
    save_torch_atomic({"epoch": 1}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}

    def crash(obj: object, stream: object) -> None:
        stream.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(_atomic.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_torch_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind
