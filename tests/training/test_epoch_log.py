"""adanet.training.epoch_log: the per-epoch CSV and TensorBoard scalars."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from adanet.training import (
    METRICS_CSV,
    TensorBoardLogger,
    fit,
)
from adanet.training.losses import MultiExitLoss
from tiny_training import options, setup


def test_metrics_csv_has_one_column_per_exit(digits: Any, tmp_path: Path) -> None:
    model, optimizer, train, val = setup(digits, 0)
    seen: list[tuple[int, int, int]] = []

    def on_batch(epoch: int, index: int, total: int, loss: float) -> None:
        seen.append((epoch, index, total))

    fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=1,
        options=options(tmp_path, on_batch=on_batch),
    )
    assert seen == [(0, i, len(train)) for i in range(len(train))]  # fit and epoch agree
    header, row = (tmp_path / METRICS_CSV).read_text().splitlines()
    columns = header.split(",")
    assert columns[:6] == ["epoch", "lr", "seconds", "train_loss", "val_loss", "is_best"]
    for key in ("train_top1", "val_top1", "val_top5"):
        assert [c for c in columns if c.startswith(key + "_")] == [
            f"{key}_exit{i}" for i in range(model.num_exits)
        ]
    values = dict(zip(columns, row.split(","), strict=True))
    assert values["epoch"] == "0" and values["is_best"] == "True"
    assert 0.0 <= float(values["val_top1_exit1"]) <= float(values["val_top5_exit1"]) <= 1.0
    assert float(values["lr"]) == optimizer.param_groups[0]["lr"]


def test_tensorboard_logger_writes_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path)
    record = {
        "epoch": 0,
        "lr": 0.1,
        "train_loss": 2.0,
        "val_loss": 1.5,
        "train_top1": [0.25, 0.5],
        "val_top1": [0.3, 0.6],
        "val_top5": [0.9, 1.0],
    }
    logger(record)
    logger({**record, "epoch": 1, "lr": 0.01, "val_loss": None})
    logger.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {
        "loss/train",
        "loss/val",
        "lr",
        "top1_train/exit0",
        "top1_train/exit1",
        "top1_val/exit0",
        "top1_val/exit1",
        "top5_val/exit0",
        "top5_val/exit1",
    }
    assert [e.value for e in events.Scalars("lr")] == pytest.approx([0.1, 0.01])
    assert [e.step for e in events.Scalars("loss/val")] == [0]  # None is not written
    assert events.Scalars("top1_val/exit1")[0].value == pytest.approx(0.6)


def test_tensorboard_logger_names_the_extra_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[tensorboard\]"):
        TensorBoardLogger(tmp_path)
