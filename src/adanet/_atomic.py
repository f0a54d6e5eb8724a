"""The one atomic writer: every file adanet writes goes through a fresh temporary and a rename.

The content goes to a temporary file made by :func:`tempfile.mkstemp` (a random name opened
with ``O_EXCL``, so nothing can be planted under it in advance) in the target's folder, is
flushed to disk, gets the mode a plain ``open()`` would give it under the process umask
(``mkstemp`` makes files private, 0600), and is then renamed over the target. A crash or a
full disk midway leaves the previous file intact and at worst a temporary named
``.<target>.<random>.tmp``, which :data:`TEMPORARY_NAME` recognises.

Whole directories (a model directory, an ONNX export) are replaced by
:func:`replace_directory`: the new tree is written into a fresh sibling, flushed, and swapped
in, so a reader sees the whole old tree or the whole new one, never a mix (see its docs for the
swap and for what a reader does in the one window the portable swap leaves).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TEMPORARY_NAME",
    "atomic_path",
    "directory_mode",
    "existing_directory",
    "file_mode",
    "replace_directory",
    "save_torch_atomic",
    "write_bytes_atomic",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

#: Names of the temporaries :func:`atomic_path` makes: ``.<target>.<8 random>.tmp``.
TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def file_mode() -> int:
    """The mode a plain ``open()`` gives a new file under this process's umask."""
    # The only portable way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def directory_mode() -> int:
    """The mode a plain ``mkdir()`` gives a new folder under this process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


def _fsync_directory(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk (POSIX only).
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` to write to; renamed over ``path`` on success.

    For writers that want a file name (a plotting library, ``torch.onnx.export``). The
    temporary is created empty with ``O_EXCL`` under a random name; on an exception it is
    deleted and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, file_mode())
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically.

    Raises:
        OSError: The folder cannot be written; ``path`` is then unchanged.
    """
    with atomic_path(path) as temporary:
        temporary.write_bytes(payload)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON atomically.

    Raises:
        TypeError: ``payload`` holds something JSON cannot represent (nothing is written).
    """
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv_atomic(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write ``rows`` as a CSV table with a header line, atomically.

    Rewriting the whole table each time (rather than appending) keeps the file whole when a
    write is killed, and keeps it consistent with a resumed run's history.

    Args:
        path: The CSV file.
        columns: Column names, in order; a row's missing keys give empty cells.
        rows: One mapping per line.
    """
    lines = [",".join(_csv_cell(c) for c in columns)]
    lines += [",".join(_csv_cell(row.get(c)) for c in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def save_torch_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` atomically: the previous file survives a crash midway."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        torch.save(obj, stream)


# ------------------------------------------------------------------ whole directories

#: Linux's ``renameat2`` flag that swaps two paths atomically.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
#: Whether to try the atomic exchange at all (tests turn it off to exercise the fallback).
_USE_EXCHANGE = True


def _sibling_name(target: Path) -> re.Pattern[str]:
    # ".<name>.<pid>-<8 random>.tmp" (the new tree being written, or after an exchange the old
    # tree being deleted) and ".<name>.<pid>-<8 random>.old" (the old tree moved aside).
    return re.compile(
        rf"^\.{re.escape(target.name)}\.(?P<pid>\d+)-[a-z0-9_]{{8}}\.(?P<kind>tmp|old)$"
    )


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or the file system cannot, and the caller falls back to
    two renames.
    """
    if not _USE_EXCHANGE or not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without renameat2 (glibc < 2.28, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _clean_stale(target: Path) -> None:
    """Remove what a writer killed midway left beside ``target``; put an old tree moved
    aside back where ``target`` is missing. Siblings of a live writer are left alone."""
    pattern = _sibling_name(target)
    with contextlib.suppress(OSError):
        for entry in sorted(target.parent.iterdir()):
            match = pattern.match(entry.name)
            if match is None or _alive(int(match["pid"])) or entry.is_symlink():
                continue
            if match["kind"] == "old" and not os.path.lexists(target):
                os.rename(entry, target)  # killed between the two renames: restore the old tree
            else:
                shutil.rmtree(entry, ignore_errors=True)


def existing_directory(path: str | os.PathLike[str]) -> Path:
    """``path``, or the old tree :func:`replace_directory` moved aside if a replacement was
    interrupted between its two renames (only where the atomic exchange is unavailable).

    Readers call this, so that the window in which ``path`` is missing reads as the old tree.
    It changes nothing on disk.
    """
    target = Path(path)
    if target.is_dir() or not target.parent.is_dir():
        return target
    pattern = _sibling_name(target)
    asides = [
        entry
        for entry in target.parent.iterdir()
        if (match := pattern.match(entry.name)) is not None
        and match["kind"] == "old"
        and entry.is_dir()
        and not entry.is_symlink()
    ]
    return max(asides, key=lambda entry: entry.stat().st_mtime) if asides else target


def _flush_tree(root: Path) -> None:
    # Every file and folder of the new tree on disk before the swap makes it visible; folders
    # get the umask's mode (mkdtemp makes its folder private).
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as stream:
                os.fsync(stream.fileno())
        os.chmod(folder, directory_mode())
        _fsync_directory(Path(folder))


def _swap_by_renames(fresh: Path, target: Path, prefix: str) -> None:
    aside = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
    os.rename(target, aside)  # onto the empty folder mkdtemp made, which it replaces
    try:
        os.rename(fresh, target)
    except BaseException:
        os.rename(aside, target)  # the old tree goes back
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def replace_directory(
    path: str | os.PathLike[str], *, check_existing: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """A fresh empty folder beside ``path`` to write a whole tree into; swapped in on success.

    The swap: where ``path`` does not exist, one rename. Where it does, Linux's
    ``renameat2(RENAME_EXCHANGE)`` swaps the two trees in one atomic step; elsewhere the old
    tree is renamed aside to ``.<name>.<pid>-<random>.old`` and the new one into place, and a
    reader that finds ``path`` missing in between reads the aside copy
    (:func:`existing_directory`). The old tree is then deleted. A writer killed at any point
    leaves ``path`` whole (old or new) or, in that window, the aside copy; what it left beside
    ``path`` is removed, or the aside copy put back, by the next replacement once the writer's
    process is gone.

    Args:
        path: The folder to create or replace. A symbolic link to a folder is followed: the
            folder it points to is replaced.
        check_existing: Called with the existing folder before anything is written; raises to
            refuse replacing it (e.g. it holds files the caller did not write).

    Raises:
        FileExistsError: ``path`` exists and is not a folder.
        OSError: The parent folder cannot be written; ``path`` is then unchanged.
    """
    target = Path(os.path.realpath(path))
    if os.path.lexists(target) and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(target)
    if target.is_dir() and check_existing is not None:
        check_existing(target)
    prefix = f".{target.name}.{os.getpid()}-"
    fresh = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    try:
        yield fresh
        _flush_tree(fresh)
        if not os.path.lexists(target):
            os.rename(fresh, target)
        elif _exchange(fresh, target):
            shutil.rmtree(fresh, ignore_errors=True)  # it now holds the old tree
        else:
            _swap_by_renames(fresh, target, prefix)
        _fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
