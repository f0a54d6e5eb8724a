"""Per-epoch training logs people can open: a CSV table and, optionally, TensorBoard scalars."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adanet._atomic import write_csv_atomic

__all__ = ["METRICS_CSV", "EpochCallback", "TensorBoardLogger", "epoch_csv_rows", "write_epoch_csv"]

METRICS_CSV = "metrics.csv"
"""File name of the per-epoch table :func:`fit` writes into the run folder."""

EpochCallback = Callable[[dict[str, Any]], None]
"""Called with each epoch's record (see :func:`adanet.training.fit`)."""

_SCALARS = ("epoch", "lr", "seconds", "train_loss", "val_loss", "is_best")
_PER_EXIT = ("train_top1", "val_top1", "val_top5")


def epoch_csv_rows(
    history: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and flat rows of ``history``: one column per exit for per-exit accuracies
    (``val_top1_exit0``, ...).

    Returns:
        ``(columns, rows)`` for :func:`adanet.cli.run_folder.write_csv_atomic`.
    """
    exits = max((len(r.get("train_top1") or []) for r in history), default=0)
    columns = list(_SCALARS) + [f"{key}_exit{i}" for key in _PER_EXIT for i in range(exits)]
    rows: list[dict[str, Any]] = []
    for record in history:
        row: dict[str, Any] = {key: record.get(key) for key in _SCALARS}
        for key in _PER_EXIT:
            for index, value in enumerate(record.get(key) or []):
                row[f"{key}_exit{index}"] = value
        rows.append(row)
    return columns, rows


def write_epoch_csv(path: str | os.PathLike[str], history: Sequence[Mapping[str, Any]]) -> None:
    """Write the whole history as a CSV table, atomically (see :func:`epoch_csv_rows`)."""
    columns, rows = epoch_csv_rows(history)
    write_csv_atomic(path, columns, rows)


class TensorBoardLogger:
    """Writes each epoch's losses, per-exit accuracies and learning rate as TensorBoard
    scalars; pass it (or a callable that calls it) as ``on_epoch``.

    Tags: ``loss/train``, ``loss/val``, ``lr``, ``top1_train/exit<i>``,
    ``top1_val/exit<i>``, ``top5_val/exit<i>``; the step is the epoch.

    Args:
        log_dir: The event-file folder (e.g. ``<run>/tensorboard``).

    Raises:
        ImportError: TensorBoard is not installed (``pip install "adanet-torch[tensorboard]"``).
    """

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.writer = _summary_writer_class()(log_dir=os.fspath(log_dir))

    @staticmethod
    def check_available() -> None:
        """Raise the :class:`ImportError` the constructor would, without writing anything."""
        _summary_writer_class()

    def __call__(self, record: Mapping[str, Any]) -> None:
        """Write one epoch's record."""
        step = int(record["epoch"])
        for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("lr", "lr")):
            if record.get(key) is not None:
                self.writer.add_scalar(tag, float(record[key]), step)
        for prefix, key in (
            ("top1_train", "train_top1"),
            ("top1_val", "val_top1"),
            ("top5_val", "val_top5"),
        ):
            for index, value in enumerate(record.get(key) or []):
                self.writer.add_scalar(f"{prefix}/exit{index}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def _summary_writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            "TensorBoard logging needs the tensorboard package; install it with "
            'pip install "adanet-torch[tensorboard]"'
        ) from error
    return SummaryWriter
