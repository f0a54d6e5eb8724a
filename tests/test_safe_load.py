"""Tests of adanet._safe_load: confined reads of a folder's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adanet._safe_load import CheckpointError, check_plain_name, read_confined


@pytest.mark.parametrize(
    "name",
    ["../x.json", "/etc/passwd", "a/b.json", "..", ".", ".hidden", "", "a\\b", "C:x", "a\x00b"],
)
def test_names_that_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    assert check_plain_name(name) is not None
    with pytest.raises(CheckpointError, match="plain file name"):
        read_confined(tmp_path, name, max_bytes=100)


@pytest.mark.parametrize("name", ["config.json", "stage_0.onnx", "model-v2.safetensors"])
def test_plain_names_are_read(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"payload")
    assert check_plain_name(name) is None
    assert read_confined(tmp_path, name, max_bytes=100) == b"payload"


def test_links_fifos_folders_and_large_files_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").symlink_to(outside)
    with pytest.raises(CheckpointError, match="symbolic link"):
        read_confined(folder, "config.json", max_bytes=100)
    os.mkfifo(folder / "fifo")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_confined(folder, "fifo", max_bytes=100)
    (folder / "sub").mkdir()
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_confined(folder, "sub", max_bytes=100)
    (folder / "big").write_bytes(b"x" * 101)
    with pytest.raises(CheckpointError, match="more than the 100"):
        read_confined(folder, "big", max_bytes=100)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_confined(folder, "absent", max_bytes=100)
    with pytest.raises(ValueError, match="plain"):
        read_confined(folder, "../outside.json", max_bytes=100, error=ValueError)
