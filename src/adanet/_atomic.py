"""The one atomic writer: every file adanet writes goes through a fresh temporary and a rename.

The content goes to a temporary file made by :func:`tempfile.mkstemp` (a random name opened
with ``O_EXCL``, so nothing can be planted under it in advance) in the target's folder, is
flushed to disk, gets the mode a plain ``open()`` would give it under the process umask
(``mkstemp`` makes files private, 0600), and is then renamed over the target. A crash or a
full disk midway leaves the previous file intact and at worst a temporary named
``.<target>.<random>.tmp``, which :data:`TEMPORARY_NAME` recognises.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TEMPORARY_NAME",
    "atomic_path",
    "file_mode",
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
