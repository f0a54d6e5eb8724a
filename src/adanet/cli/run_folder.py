"""The run folder of ``adanet train``: atomic writes and the rules that keep a run's files.

A run folder is append-only unless the user asks otherwise:

* :func:`claim_run_folder` refuses a folder that already holds a run, unless the run is
  resumed (``resume=True``) or replaced (``overwrite=True``, which first deletes the files
  adanet writes there and nothing else).
* Every file is written atomically (:mod:`adanet._atomic`): a killed write leaves the old
  file intact and at worst a temporary, which :func:`remove_stale_temporaries` recognises by
  name and deletes at the next run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from adanet._atomic import TEMPORARY_NAME

__all__ = [
    "EVAL_FILES",
    "RUN_FILES",
    "TENSORBOARD_DIR",
    "TRAIN_FILES",
    "RunFolderError",
    "claim_run_folder",
    "remove_stale_temporaries",
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


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (it holds another run, or is not a folder)."""


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
        match = TEMPORARY_NAME.match(entry.name)
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
