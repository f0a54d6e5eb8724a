"""Tests of adanet.cli.run_folder: stale temporaries and the append-only rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from adanet.cli.run_folder import (
    EVAL_FILES,
    TRAIN_FILES,
    RunFolderError,
    claim_run_folder,
    remove_stale_temporaries,
)


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    stale = [
        ".checkpoint_last.pt.k2j4_x9a.tmp",
        ".metrics.json.abcd1234.tmp",
        ".eval_metrics.json.zz99zz99.tmp",
    ]
    kept = [
        "checkpoint_last.pt",
        "notes.txt",
        ".notes.txt.abcd1234",  # not a file adanet writes
        ".checkpoint_last.pt.short.tmp",  # not mkstemp's 8 random characters
        ".checkpoint_last.pt.k2j4_x9a",  # not a temporary's .tmp suffix
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
