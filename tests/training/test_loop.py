"""adanet.training.loop: one epoch, validation, and the NaN guard before any step."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

from adanet.training import (
    NonFiniteLossError,
    train_one_epoch,
    validate,
)
from adanet.training.losses import MultiExitLoss
from tiny_training import NaNAt, setup


def test_train_one_epoch_sets_lr_and_reports_every_exit(digits: Any) -> None:
    model, optimizer, train, val = setup(digits, 0)
    seen: list[float] = []

    def schedule(epoch: int, batch: int, batches: int) -> float:
        seen.append(0.05 + batch)
        return 0.05 + batch

    result = train_one_epoch(
        model, train, optimizer, MultiExitLoss("ce"), epoch=0, lr_schedule=schedule, progress=False
    )
    assert len(result.exit_top1) == model.num_exits
    assert all(0.0 <= a <= 1.0 for a in result.exit_top1)
    assert result.num_samples == 160
    assert result.lr == 0.05
    assert seen == [0.05 + b for b in range(len(train))]
    assert optimizer.param_groups[0]["lr"] == seen[-1]
    checked = validate(model, val, MultiExitLoss("ce"))
    assert checked.num_samples == 64
    assert len(checked.exit_top5) == model.num_exits
    assert all(t5 >= t1 for t1, t5 in zip(checked.exit_top1, checked.exit_top5, strict=True))


def test_runs_without_tqdm(digits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model, optimizer, train, _ = setup(digits, 0)
    result = train_one_epoch(model, train, optimizer, MultiExitLoss("ce"), epoch=0, progress=True)
    assert result.num_samples == 160


def test_nan_loss_stops_before_the_step(digits: Any) -> None:
    model, optimizer, train, _ = setup(digits, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch 1/5") as caught:
        train_one_epoch(model, train, optimizer, NaNAt(1), epoch=0, progress=False)
    assert caught.value.epoch == 0 and caught.value.batch_index == 0
    after = model.state_dict()
    for key, value in before.items():
        if key.endswith("num_batches_tracked") or "running" in key:
            continue  # the forward pass itself updates BatchNorm statistics
        assert torch.equal(value, after[key]), key
