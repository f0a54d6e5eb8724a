"""adanet.training.fit: epochs of training and validation, and what it leaves on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adanet.training import (
    BEST_MODEL,
    LAST_CHECKPOINT,
    METRICS_CSV,
    NonFiniteLossError,
    TrainState,
    fit,
    load_checkpoint,
)
from adanet.training.losses import MultiExitLoss
from tiny_training import NaNAt, options, setup


def test_nan_loss_leaves_the_checkpoint_untouched(digits: Any, tmp_path: Path) -> None:
    model, optimizer, train, val = setup(digits, 0)
    loss = NaNAt(len(train) + 1 + 2)  # (validation calls it once) second epoch, second batch
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 2/5"):
        fit(model, train, val, optimizer, loss, epochs=3, options=options(tmp_path))
    assert load_checkpoint(tmp_path / LAST_CHECKPOINT)["next_epoch"] == 1
    assert (tmp_path / BEST_MODEL).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST_CHECKPOINT, METRICS_CSV, BEST_MODEL]
    assert len((tmp_path / METRICS_CSV).read_text().splitlines()) == 2  # header + epoch 0


def test_fit_refuses_an_epoch_count_below_the_state(digits: Any) -> None:
    model, optimizer, train, val = setup(digits, 0)
    with pytest.raises(ValueError, match="epochs=2 is below the next epoch to run \\(5\\)"):
        fit(model, train, val, optimizer, MultiExitLoss("ce"), epochs=2, state=TrainState(5))
