"""``adanet.deploy.quantize_for_inference`` refuses bad arguments at once, before any export.

The quantization itself (RANet, MSDNet, a custom network) is tested in
``tests/onnx/test_quantize.py``, which needs the ``onnx`` extra.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import adanet
from adanet import RANet, RANetConfig


@pytest.fixture(scope="module")
def model() -> RANet:
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1)).eval()


def _images(n: int, channels: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, channels, size, size)


def test_not_an_early_exit_network() -> None:
    with pytest.raises(TypeError, match="got Sequential"):
        adanet.deploy.quantize_for_inference(nn.Sequential(nn.Conv2d(3, 3, 1)), [_images(2)])  # type: ignore[arg-type]


def test_empty_calibration(model: RANet) -> None:
    with pytest.raises(ValueError, match="no images"):
        adanet.deploy.quantize_for_inference(model, [])
    with pytest.raises(ValueError, match="no images"):
        adanet.deploy.quantize_for_inference(model, iter(()))


def test_items_that_are_not_image_tensors(model: RANet) -> None:
    with pytest.raises(TypeError, match="calibration batch 0 is a list"):
        adanet.deploy.quantize_for_inference(model, [[1.0, 2.0]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single tensor"):
        adanet.deploy.quantize_for_inference(model, _images(4))
    with pytest.raises(TypeError, match=r"torch\.int64"):
        adanet.deploy.quantize_for_inference(model, [torch.zeros(2, 3, 32, 32, dtype=torch.long)])


def test_wrong_channels_or_sizes(model: RANet) -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 1, 32, 32\); expected \[N, 3, H, W\]"):
        adanet.deploy.quantize_for_inference(model, [_images(2, channels=1)])
    with pytest.raises(ValueError, match="calibration batch 1 has images of 24x24"):
        adanet.deploy.quantize_for_inference(model, [_images(2), _images(2, size=24)])


def test_train_mode(model: RANet) -> None:
    model.train()
    try:
        with pytest.raises(RuntimeError, match=r"model\.eval\(\)"):
            adanet.deploy.quantize_for_inference(model, [_images(2)])
    finally:
        model.eval()


def test_missing_extra_is_named(model: RANet, monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes an import fail, whether or not another test imported it.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[onnx\]"):
        adanet.deploy.quantize_for_inference(model, [_images(2)])
