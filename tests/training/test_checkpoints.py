"""adanet.training.checkpoints: atomic saves and a resume that reproduces the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adanet.training import (
    LAST_CHECKPOINT,
    METRICS_CSV,
    LRSchedule,
    fit,
    load_checkpoint,
    resume,
    save_checkpoint,
)
from adanet.training.losses import MultiExitLoss
from tiny_training import options, setup


def test_interrupted_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint({"weights": torch.arange(5.0), "epoch": 1}, path)
    good = path.read_bytes()
    real_save = torch.save

    def dying_save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"weights": torch.zeros(5), "epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == good
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [LAST_CHECKPOINT]  # no temporary left


class _Stop(Exception):
    pass


def test_resume_reproduces_an_uninterrupted_run(digits: Any, tmp_path: Path) -> None:
    schedule = LRSchedule(base_lr=0.1, epochs=3, lr_type="cosine")

    model, optimizer, train, val = setup(digits, 0)
    straight = fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=3,
        options=options(tmp_path / "straight", lr_schedule=schedule),
    )
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, train, val = setup(digits, 0)

    def stop_after_first(record: dict[str, Any]) -> None:
        if record["epoch"] == 0:
            raise _Stop  # the process "dies" after epoch 0 was saved

    with pytest.raises(_Stop):
        fit(
            model,
            train,
            val,
            optimizer,
            MultiExitLoss("ce"),
            epochs=3,
            options=options(tmp_path / "resumed", lr_schedule=schedule, on_epoch=stop_after_first),
        )
    # A new process: other initial weights and RNG states, which resume must replace.
    model, optimizer, train, val = setup(digits, 123)
    state = resume(tmp_path / "resumed" / LAST_CHECKPOINT, model, optimizer, loader=train)
    assert state.next_epoch == 1
    final = fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=3,
        state=state,
        options=options(tmp_path / "resumed", lr_schedule=schedule),
    )
    got = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key
    assert [r["train_loss"] for r in final.history] == [r["train_loss"] for r in straight.history]
    assert final.best == straight.best and final.best_epoch == straight.best_epoch
    # The CSV log holds the whole run, the resumed epochs included, one line per epoch.
    lines = (tmp_path / "resumed" / METRICS_CSV).read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1", "2"]
