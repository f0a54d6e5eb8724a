"""``DenseLayer``: DenseNet's bottleneck layer whose output is concatenated to its input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import require_int
from ._common import (
    ActivationLayer,
    NormLayer,
    as_tensor,
    bottleneck_conv,
    recompute_in_backward,
    resize_to,
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
        memory_efficient: In training, recompute the bottleneck in backward instead of
            keeping its activations (less memory, about a third more compute).

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
        if self.memory_efficient and self.training and torch.is_grad_enabled():
            new = recompute_in_backward(self.conv, self, x)  # [N, growth, H', W']
        else:
            new = self.conv(x)  # [N, growth, H', W']
        return torch.cat([resize_to(x, new.shape[-2:]), new], dim=1)

    def grow(self, pieces: Sequence[Tensor]) -> Tensor:
        """The new channels only, from an input kept in channel pieces.

        Used by memory-efficient training: the concatenation of ``pieces`` happens inside the
        recomputed function, so it is never stored. Only for ``stride=1``.
        """
        if self.memory_efficient and self.training and torch.is_grad_enabled():
            return recompute_in_backward(self._conv_of_pieces, self, *pieces)
        return self._conv_of_pieces(*pieces)

    def _conv_of_pieces(self, *pieces: Tensor) -> Tensor:
        new: Tensor = self.conv(as_tensor(list(pieces)))  # [N, growth, H, W]
        return new
