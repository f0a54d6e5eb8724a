"""adanet.training.precision: autocast dtype, gradient scaler, channels-last."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from adanet.training import (
    Precision,
    make_grad_scaler,
    train_one_epoch,
)
from adanet.training.losses import MultiExitLoss
from tiny_training import setup


def test_precision_from_command_line_names() -> None:
    assert Precision.create(None, "cpu") == Precision()
    bf16 = Precision.create("bf16", "cpu", channels_last=True)
    assert bf16.amp_dtype == torch.bfloat16 and bf16.scaler is None and bf16.channels_last
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        Precision.create("fp16", "cpu")
    with pytest.raises(ValueError, match="amp must be one of 'bf16', 'fp16', got 'fp8'"):
        Precision.create("fp8", "cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amp_dtype must be"):
        Precision(amp_dtype=torch.float64)


def test_bf16_precision_trains_in_channels_last(digits: Any) -> None:
    model, optimizer, train, _ = setup(digits, 0)
    precision = Precision.create("bf16", "cpu", channels_last=True)
    result = train_one_epoch(
        model, train, optimizer, MultiExitLoss("ce"), epoch=0, precision=precision, progress=False
    )
    assert math.isfinite(result.loss)


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_grad_scaler_is_the_device_agnostic_one_when_torch_has_it() -> None:
    scaler = make_grad_scaler("cuda")
    assert isinstance(scaler, torch.amp.GradScaler)
