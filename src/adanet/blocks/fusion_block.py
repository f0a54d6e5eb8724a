"""``FusionBlock``: RANet's dense layer that also takes a feature from the coarser scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._common import ActivationLayer, NormLayer, bottleneck_conv, resize_to

__all__ = ["FusionBlock"]


class FusionBlock(nn.Module):
    """A dense layer fed by two resolutions (the original's ``ConvUpNormal``).

    Of the ``growth_rate`` new channels, ``floor(growth_rate * compress_factor)`` come from
    a bottleneck conv on the coarser-scale feature, upsampled to this layer's output size;
    the rest from a bottleneck conv on the layer's own input. The output is
    ``[input, coarse_new, fine_new]``, everything bilinearly resized (align_corners=True) to
    the size of ``fine_new``.

    Args:
        in_channels: Channels of the layer's own (finer) input.
        coarse_channels: Channels of the coarser-scale feature.
        growth_rate: Channels added in all.
        compress_factor: Share of the new channels taken from the coarser scale.
        bottleneck_width: Bottleneck factor of the fine path.
        coarse_bottleneck_width: Bottleneck factor of the coarse path.
        downsample: Halve the resolution (the fine path's 3×3 conv has stride 2): where a
            finer branch catches up with the resolution of the coarser one.
        norm_first: Pre-activation ordering.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.

    Shape:
        ``x``: ``[N, in_channels, H, W]``; ``coarse``: ``[N, coarse_channels, h, w]`` (any
        size) → ``[N, in_channels + growth_rate, H', W']``.
    """

    def __init__(
        self,
        in_channels: int,
        coarse_channels: int,
        growth_rate: int,
        *,
        compress_factor: float = 0.25,
        bottleneck_width: int = 4,
        coarse_bottleneck_width: int = 4,
        downsample: bool = False,
        norm_first: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        coarse_growth = math.floor(growth_rate * compress_factor)
        if coarse_growth < 1 or coarse_growth >= growth_rate:
            raise ValueError(
                f"compress_factor={compress_factor} with growth_rate={growth_rate} gives "
                f"{coarse_growth} coarse channels; need between 1 and {growth_rate - 1}"
            )
        self.in_channels = in_channels
        self.out_channels = in_channels + growth_rate
        self.coarse_conv = bottleneck_conv(
            coarse_channels,
            coarse_growth,
            bottleneck_width=coarse_bottleneck_width,
            norm_first=norm_first,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )
        self.conv = bottleneck_conv(
            in_channels,
            growth_rate - coarse_growth,
            bottleneck_width=bottleneck_width,
            stride=2 if downsample else 1,
            norm_first=norm_first,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )

    def forward(self, x: Tensor, coarse: Tensor) -> Tensor:
        fine_new = self.conv(x)  # [N, growth - coarse_growth, H', W']
        size = fine_new.shape[-2:]
        coarse_new = resize_to(self.coarse_conv(coarse), size)  # [N, coarse_growth, H', W']
        return torch.cat([resize_to(x, size), coarse_new, fine_new], dim=1)
