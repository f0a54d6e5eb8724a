"""``DenseLayer``: DenseNet's bottleneck layer whose output is concatenated to its input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks._common import ActivationLayer, NormLayer, as_tensor, bottleneck_conv, resize_to
from adanet.blocks._shared_recompute import (
    concat_remembering,
    efficient_training,
    pieces_of,
    run_from_pieces,
)

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
        memory_efficient: In training, keep for backward only each convolution's output and
            the input's channel pieces: backward recomputes the concatenation and the
            norm → activation, never a convolution (see
            :mod:`adanet.blocks._shared_recompute`).

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
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        require_int("in_channels", in_channels, 1)
        require_int("growth_rate", growth_rate, 1)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        self.in_channels = in_channels
        self.out_channels = in_channels + growth_rate
        self.memory_efficient = memory_efficient
        #: Whether the layer halves the resolution.
        self.downsampling = stride == 2
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
        if efficient_training(self.memory_efficient, self):
            return concat_remembering(self.output_pieces(pieces_of(x)))
        new = self.conv(x)  # [N, growth, H', W']
        return torch.cat([resize_to(x, new.shape[-2:]), new], dim=1)

    def output_pieces(self, pieces: Sequence[Tensor]) -> list[Tensor]:
        """The output as channel pieces, from an input kept in channel pieces: the
        memory-efficient training path, where no concatenation is stored for backward.

        Returns:
            ``[*pieces, new]``, or ``[resized input, new]`` for ``stride=2``; their
            concatenation is :meth:`forward` of the concatenated ``pieces``.
        """
        new = run_from_pieces(self.conv, pieces)  # [N, growth, H', W']
        if self.downsampling:
            return [resize_to(as_tensor(list(pieces)), new.shape[-2:]), new]
        return [*pieces, new]
