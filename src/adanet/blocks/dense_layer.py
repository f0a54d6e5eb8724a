"""``DenseLayer``: DenseNet's bottleneck layer whose output is concatenated to its input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import ActivationLayer, NormLayer, bottleneck_conv, resize_to

__all__ = ["DenseLayer"]


class DenseLayer(nn.Module):
    """A 1×1 bottleneck conv then a 3×3 conv whose ``growth_rate`` new channels are
    concatenated to the input (``[input, new]``), DenseNet style.

    With ``stride=2`` the 3×3 conv halves the resolution and the input is bilinearly resized
    to match before the concatenation (RANet's downsampling variant).

    Args:
        in_channels: Input channels.
        growth_rate: Channels added.
        bottleneck_width: The 1×1 conv has ``min(in_channels, bottleneck_width *
            growth_rate)`` channels.
        stride: 1 or 2.
        norm_first: Pre-activation ordering (norm → act → conv).
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.

    Shape:
        ``[N, in_channels, H, W]`` → ``[N, in_channels + growth_rate, H', W']`` with
        ``H' = ceil(H / stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        *,
        bottleneck_width: int = 4,
        stride: int = 1,
        norm_first: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        self.in_channels = in_channels
        self.out_channels = in_channels + growth_rate
        self.conv = bottleneck_conv(
            in_channels,
            growth_rate,
            bottleneck_width=bottleneck_width,
            stride=stride,
            norm_first=norm_first,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )

    def forward(self, x: Tensor) -> Tensor:
        new = self.conv(x)  # [N, growth, H', W']
        return torch.cat([resize_to(x, new.shape[-2:]), new], dim=1)
