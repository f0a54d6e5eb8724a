"""The run folder of ``adanet train``: atomic writes and the rules that keep a run's files.

A run folder is append-only unless the user asks otherwise:

* :func:`claim_run_folder` refuses a folder that already holds a run, unless the run is
  resumed (``resume=True``) or replaced (``overwrite=True``, which first deletes the files
  adanet writes there and nothing else).
* Every file is written atomically by :func:`write_text_atomic` / :func:`write_json_atomic`
  (and checkpoints by :func:`adanet.checkpoint.save_atomic`): the content goes to a temporary
  file made by :func:`tempfile.mkstemp` (a random name opened with ``O_EXCL``, so nothing can
  be planted under it in advance) in the same folder, which is then renamed over the target.
  A killed write leaves the old file intact and at worst a temporary, which
  :func:`remove_stale_temporaries` recognises by name and deletes at the next run.
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

__all__ = [
    "EVAL_FILES",
    "RUN_FILES",
    "TENSORBOARD_DIR",
    "TRAIN_FILES",
    "RunFolderError",
    "atomic_path",
    "claim_run_folder",
    "remove_stale_temporaries",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

TRAIN_FILES: tuple[str, ...] = (
    "config.json",
    "args.txt",
    "checkpoint_last.pt",
    "model_best.pt",
    "metrics.json",
    "metrics.csv",
    "policies.json",
    "anytime.png",
    "budgeted.png",
)
"""Files ``adanet train`` writes into a run folder (``tensorboard/`` aside)."""

EVAL_FILES: tuple[str, ...] = (
    "eval_metrics.json",
    "eval_policies.json",
    "eval_anytime.png",
    "eval_budgeted.png",
)
"""Files ``adanet eval`` writes into a run folder (never the training run's own)."""

RUN_FILES: tuple[str, ...] = TRAIN_FILES + EVAL_FILES
"""Every file adanet writes into a run folder."""

TENSORBOARD_DIR = "tensorboard"
"""Sub-folder of TensorBoard event files (``adanet train --tensorboard``)."""

# mkstemp's random part: 8 characters of [a-z0-9_]. save_atomic names its temporaries
# ".<target>.<random>", atomic_path ".<target>.<random>.tmp".
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(\.tmp)?$")


def _umask() -> int:
    # The only portable way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (it holds another run, or is not a folder)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` to write to; renamed over ``path`` on success.

    For writers that want a file name (a plotting library, say). The temporary is created
    empty with ``O_EXCL`` under a random name; on an exception it is deleted and ``path`` is
    left as it was.
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
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a fresh temporary file and a rename.

    Raises:
        OSError: The folder cannot be written; ``path`` is then unchanged.
    """
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON through :func:`write_text_atomic`.

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


def remove_stale_temporaries(
    folder: str | os.PathLike[str], names: Sequence[str] = RUN_FILES
) -> list[Path]:
    """Delete the temporaries that killed atomic writes left in ``folder``.

    Only regular files named like adanet's own temporaries of ``names`` are touched
    (``.checkpoint_last.pt.k2j4_x9a`` and the like); anything else stays.

    Args:
        folder: The run folder.
        names: The files whose temporaries to delete (``eval`` deletes only its own, so a
            training run writing into the same folder keeps its live ones).

    Returns:
        The files deleted.
    """
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or match.group("target") not in names:
            continue
        if entry.is_file() and not entry.is_symlink():
            entry.unlink()
            removed.append(entry)
    return removed


def _existing_run_files(root: Path) -> list[str]:
    return [name for name in RUN_FILES if (root / name).exists()]


def claim_run_folder(
    folder: str | os.PathLike[str], *, resume: bool, overwrite: bool, dry_run: bool = False
) -> list[str]:
    """Check that ``folder`` may take this run, and make it ready (unless ``dry_run``).

    Args:
        folder: The run folder (``--save``).
        resume: The run continues the one in ``folder`` (``--resume``).
        overwrite: Replace the run in ``folder`` (``--overwrite``): adanet's own files there
            (and TensorBoard event files in ``tensorboard/``) are deleted, other files are
            left alone.
        dry_run: Only check; change nothing. Call it on every process, then once more on
            the writing one without ``dry_run``.

    Returns:
        The adanet files ``folder`` held before.

    Raises:
        RunFolderError: ``folder`` is a file, ``resume`` and ``overwrite`` are both set, or
            ``folder`` holds a run and neither is set.
    """
    root = Path(folder)
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other; choose one")
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"--save {str(root)!r} is a file, not a folder")
    existing = _existing_run_files(root) if root.is_dir() else []
    if existing and not (resume or overwrite):
        raise RunFolderError(
            f"{str(root)!r} already holds a run ({', '.join(existing)}); pass --resume to "
            "continue it, --overwrite to replace it, or choose another --save folder"
        )
    if dry_run:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root, TRAIN_FILES)
    if overwrite:
        for name in existing:
            (root / name).unlink()
        # Old event files would show up in TensorBoard as part of the new run.
        for events in (root / TENSORBOARD_DIR).glob("events.out.tfevents.*"):
            if events.is_file() and not events.is_symlink():
                events.unlink()
    return existing
