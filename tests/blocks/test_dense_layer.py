import pytest
import torch
from torch import nn

from adanet.blocks import DenseLayer


def test_concatenates_input_and_growth() -> None:
    layer = DenseLayer(8, 6, bottleneck_width=2)
    x = torch.randn(2, 8, 10, 10)
    y = layer(x)
    assert y.shape == (2, 14, 10, 10)
    assert torch.equal(y[:, :8], x)  # DenseNet: the input is carried unchanged
    assert layer.out_channels == 14


def test_bottleneck_width_caps_the_inner_conv() -> None:
    layer = DenseLayer(64, 4, bottleneck_width=2)
    assert layer.conv[0][0].out_channels == 8  # min(64, 2 * 4)
    narrow = DenseLayer(3, 4, bottleneck_width=4)
    assert narrow.conv[0][0].out_channels == 3  # never wider than the input


def test_stride_two_halves_and_resizes_identity() -> None:
    layer = DenseLayer(4, 3, stride=2)
    y = layer(torch.randn(2, 4, 9, 9))
    assert y.shape == (2, 7, 5, 5)


def test_pre_activation_variant_and_custom_factories() -> None:
    layer = DenseLayer(
        5, 3, norm_first=True, norm_layer=lambda c: nn.GroupNorm(1, c), activation_layer=nn.SiLU
    )
    assert isinstance(layer.conv[0], nn.GroupNorm)
    assert isinstance(layer.conv[1], nn.SiLU)
    assert layer(torch.randn(1, 5, 6, 6)).shape == (1, 8, 6, 6)


def test_backward_reaches_every_parameter() -> None:
    layer = DenseLayer(4, 3)
    layer(torch.randn(2, 4, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_rejects_other_strides() -> None:
    with pytest.raises(ValueError, match="stride"):
        DenseLayer(4, 3, stride=3)
