"""Tests of adanet.run_folder: atomic writes, stale temporaries, the append-only rule."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adanet.run_folder import (
    EVAL_FILES,
    TRAIN_FILES,
    RunFolderError,
    atomic_path,
    claim_run_folder,
    remove_stale_temporaries,
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


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    stale = [
        ".checkpoint_last.pt.k2j4_x9a",
        ".metrics.json.abcd1234.tmp",
        ".eval_metrics.json.zz99zz99.tmp",
    ]
    kept = [
        "checkpoint_last.pt",
        "notes.txt",
        ".notes.txt.abcd1234",  # not a file adanet writes
        ".checkpoint_last.pt.short",  # not mkstemp's 8 random characters
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".model_best.pt.linkxxxx").symlink_to(tmp_path / "notes.txt")
    removed = remove_stale_temporaries(tmp_path, TRAIN_FILES)
    assert sorted(p.name for p in removed) == sorted(stale[:2])
    assert (tmp_path / stale[2]).exists()  # an evaluation's: not train's to remove
    assert remove_stale_temporaries(tmp_path, EVAL_FILES) == [tmp_path / stale[2]]
    for name in kept:
        assert (tmp_path / name).exists(), name
    assert (tmp_path / ".model_best.pt.linkxxxx").is_symlink()


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path: Path) -> None:
    (tmp_path / "model_best.pt").write_bytes(b"weights")
    with pytest.raises(RunFolderError, match=r"already holds a run \(model_best.pt\)"):
        claim_run_folder(tmp_path, resume=False, overwrite=False)
    assert claim_run_folder(tmp_path, resume=True, overwrite=False) == ["model_best.pt"]
    assert (tmp_path / "model_best.pt").read_bytes() == b"weights"
    with pytest.raises(RunFolderError, match="contradict"):
        claim_run_folder(tmp_path, resume=True, overwrite=True)


def test_overwrite_deletes_adanet_files_only(tmp_path: Path) -> None:
    for name in ("config.json", "metrics.json", "eval_metrics.json", "my_notes.md"):
        (tmp_path / name).write_text("x")
    assert claim_run_folder(tmp_path, resume=False, overwrite=True, dry_run=True)
    assert (tmp_path / "metrics.json").exists()  # a dry run changes nothing
    board = tmp_path / "tensorboard"
    board.mkdir()
    (board / "events.out.tfevents.1.host").write_bytes(b"old run")
    (board / "my_plugin.cfg").write_text("keep")
    claim_run_folder(tmp_path, resume=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.md", "tensorboard"]
    assert [p.name for p in board.iterdir()] == ["my_plugin.cfg"]


def test_a_file_is_not_a_run_folder(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("not a folder")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        claim_run_folder(path, resume=False, overwrite=True)


def test_a_new_folder_is_created(tmp_path: Path) -> None:
    assert claim_run_folder(tmp_path / "a" / "b", resume=False, overwrite=False) == []
    assert (tmp_path / "a" / "b").is_dir()
