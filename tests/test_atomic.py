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


# ------------------------------------------------------------------ whole directories


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_directory_swaps_the_whole_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    monkeypatch.setattr(_atomic, "_USE_EXCHANGE", exchange)
    target = tmp_path / "model"
    with _atomic.replace_directory(target) as fresh:
        (fresh / "a.txt").write_text("old a")
        (fresh / "b.txt").write_text("old b")
    with _atomic.replace_directory(target) as fresh:
        assert _tree(target) == {"a.txt": "old a", "b.txt": "old b"}  # untouched meanwhile
        (fresh / "a.txt").write_text("new a")
    # b.txt belonged to the old tree only: the new tree is exactly what was written.
    assert _tree(target) == {"a.txt": "new a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_replacement_keeps_the_old_tree(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with _atomic.replace_directory(target) as fresh:
        (fresh / "a.txt").write_text("old")
    with (
        pytest.raises(RuntimeError, match="late check"),
        _atomic.replace_directory(target) as fresh,
    ):
        (fresh / "a.txt").write_text("half")
        raise RuntimeError("late check")
    assert _tree(target) == {"a.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_check_existing_refuses_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    def refuse(existing: Path) -> None:
        raise ValueError(f"{existing} holds notes")

    with (
        pytest.raises(ValueError, match="holds notes"),
        _atomic.replace_directory(target, check_existing=refuse),
    ):
        pytest.fail("the body must not run")
    assert _tree(target) == {"notes.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(FileExistsError, match="not a folder"),
        _atomic.replace_directory(tmp_path / "file"),
    ):
        pytest.fail("the body must not run")


def test_an_interrupted_two_rename_swap_reads_as_the_old_tree_and_is_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_atomic, "_USE_EXCHANGE", False)
    target = tmp_path / "model"
    with _atomic.replace_directory(target) as fresh:
        (fresh / "a.txt").write_text("old")
    # What a writer killed between its two renames leaves: the old tree aside (named with a
    # process id that no longer runs) and the target missing.
    dead = 2**22 + 7  # above the default pid_max, so no process has it
    aside = tmp_path / f".model.{dead}-abcdefgh.old"
    os.rename(target, aside)
    half = tmp_path / f".model.{dead}-ijklmnop.tmp"
    half.mkdir()
    assert _atomic.existing_directory(target) == aside  # readers see the old tree
    with _atomic.replace_directory(target) as fresh:
        assert _tree(target) == {"a.txt": "old"}  # put back before anything else
        (fresh / "a.txt").write_text("new")
    assert _tree(target) == {"a.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the leftovers are gone


def test_siblings_of_a_live_writer_are_left_alone(tmp_path: Path) -> None:
    live = tmp_path / f".model.{os.getppid()}-abcdefgh.tmp"
    live.mkdir()
    with _atomic.replace_directory(tmp_path / "model") as fresh:
        (fresh / "a.txt").write_text("a")
    assert live.is_dir()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_replaced_trees_get_the_umask_modes(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        with _atomic.replace_directory(tmp_path / "model") as fresh:
            _atomic.write_text_atomic(fresh / "a.txt", "a")
            (fresh / "sub").mkdir()
            _atomic.write_bytes_atomic(fresh / "sub" / "b.bin", b"b")
    finally:
        os.umask(previous)
    root = tmp_path / "model"
    for folder in (root, root / "sub"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for file in (root / "a.txt", root / "sub" / "b.bin"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask


def test_a_linked_target_replaces_the_folder_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "v1"
    with _atomic.replace_directory(real) as fresh:
        (fresh / "a.txt").write_text("old")
    (tmp_path / "current").symlink_to(real)
    with _atomic.replace_directory(tmp_path / "current") as fresh:
        (fresh / "a.txt").write_text("new")
    assert (tmp_path / "current").is_symlink()
    assert _tree(real) == {"a.txt": "new"}
