"""``FusionBlock``: RANet's dense layer that also takes a feature from the coarser scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks._common import (
    ActivationLayer,
    NormLayer,
    as_tensor,
    bottleneck_conv,
    resize_to,
)
from adanet.blocks._shared_recompute import (
    concat_remembering,
    efficient_training,
    pieces_of,
    run_from_pieces,
)

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
        memory_efficient: In training, keep for backward only each convolution's output and
            the inputs' channel pieces: backward recomputes the concatenations and the
            norm → activation, never a convolution.

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
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        require_int("growth_rate", growth_rate, 1)
        coarse_growth = math.floor(growth_rate * compress_factor)
        if coarse_growth < 1 or coarse_growth >= growth_rate:
            raise ValueError(
                f"compress_factor={compress_factor} with growth_rate={growth_rate} gives "
                f"{coarse_growth} coarse channels; need between 1 and {growth_rate - 1}"
            )
        self.in_channels = in_channels
        self.out_channels = in_channels + growth_rate
        self.memory_efficient = memory_efficient
        #: Whether the layer halves the resolution.
        self.downsampling = downsample
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
        if efficient_training(self.memory_efficient, self):
            return concat_remembering(self.output_pieces(pieces_of(x), pieces_of(coarse)))
        return self._fuse(x, coarse)

    def _fuse(self, x: Tensor, coarse: Tensor) -> Tensor:
        fine_new = self.conv(x)  # [N, growth - coarse_growth, H', W']
        size = fine_new.shape[-2:]
        coarse_new = resize_to(self.coarse_conv(coarse), size)  # [N, coarse_growth, H', W']
        return torch.cat([resize_to(x, size), coarse_new, fine_new], dim=1)

    def output_pieces(
        self, pieces: Sequence[Tensor], coarse_pieces: Sequence[Tensor]
    ) -> list[Tensor]:
        """The output as channel pieces, from inputs kept in channel pieces: the
        memory-efficient training path, where no concatenation is stored for backward.

        Returns:
            ``[*pieces, coarse_new, fine_new]`` (the input resized as one piece when the
            layer downsamples); their concatenation is :meth:`forward`'s output.
        """
        fine_new = run_from_pieces(self.conv, pieces)  # [N, growth - coarse_growth, H', W']
        size = fine_new.shape[-2:]
        coarse_new = resize_to(run_from_pieces(self.coarse_conv, coarse_pieces), size)
        own = [resize_to(as_tensor(list(pieces)), size)] if self.downsampling else list(pieces)
        return [*own, coarse_new, fine_new]
