"""Pieces every block shares: layer factories, the bottleneck convolution, resizing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation

from adanet._validation import require_int

__all__ = [
    "ActivationLayer",
    "Feature",
    "NormLayer",
    "as_tensor",
    "bottleneck_conv",
    "conv_norm_act",
    "floor_channels",
    "resize_to",
]

#: Builds a normalisation layer for a number of channels, e.g. ``nn.BatchNorm2d``.
NormLayer = Callable[[int], nn.Module]
#: Builds an activation layer; called with ``inplace=True`` as torchvision does.
ActivationLayer = Callable[..., nn.Module]
#: A feature map, or the list of channel pieces it is the concatenation of (memory-efficient
#: training keeps dense features in pieces so that no concatenation has to be stored).
Feature = Tensor | list[Tensor]


def as_tensor(feature: Feature) -> Tensor:
    """Concatenate a feature kept in pieces (a tensor is returned as it is)."""
    if isinstance(feature, Tensor):
        return feature
    return feature[0] if len(feature) == 1 else torch.cat(feature, dim=1)


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    *,
    norm_layer: NormLayer = nn.BatchNorm2d,
    activation_layer: ActivationLayer = nn.ReLU,
    bias: bool | None = None,
) -> Conv2dNormActivation:
    """Conv → norm → activation with "same" padding (torchvision's block, no bias by default).

    Raises:
        TypeError, ValueError: A channel count that is not an int >= 1.
    """
    require_int("in_channels", in_channels, 1)
    require_int("out_channels", out_channels, 1)
    return Conv2dNormActivation(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        norm_layer=norm_layer,
        activation_layer=activation_layer,
        bias=bias,
    )


def bottleneck_conv(
    in_channels: int,
    out_channels: int,
    *,
    bottleneck_width: int,
    stride: int = 1,
    norm_first: bool = False,
    norm_layer: NormLayer = nn.BatchNorm2d,
    activation_layer: ActivationLayer = nn.ReLU,
) -> nn.Sequential:
    """The DenseNet bottleneck: a 1×1 conv to at most ``bottleneck_width * out_channels``
    channels, then a 3×3 conv (strided when ``stride`` is 2).

    Args:
        in_channels: Input channels.
        out_channels: Output channels (the growth).
        bottleneck_width: Width factor of the 1×1 conv; it never widens the input.
        stride: 1, or 2 to halve the resolution.
        norm_first: Pre-activation (norm → act → conv, twice) instead of conv → norm → act.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.

    Returns:
        ``Sequential(conv_norm_act(1×1), conv_norm_act(3×3))``, or the flat pre-activation
        sequence ``norm, act, conv1×1, norm, act, conv3×3``.
    """
    require_int("in_channels", in_channels, 1)
    require_int("out_channels", out_channels, 1)
    require_int("bottleneck_width", bottleneck_width, 1)
    inner = min(in_channels, bottleneck_width * out_channels)
    if not norm_first:
        return nn.Sequential(
            conv_norm_act(
                in_channels,
                inner,
                1,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            ),
            conv_norm_act(
                inner,
                out_channels,
                3,
                stride,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            ),
        )
    return nn.Sequential(
        norm_layer(in_channels),
        activation_layer(inplace=True),
        nn.Conv2d(in_channels, inner, 1, bias=False),
        norm_layer(inner),
        activation_layer(inplace=True),
        nn.Conv2d(inner, out_channels, 3, stride, padding=1, bias=False),
    )


def floor_channels(name: str, factor: float, width: int, where: str, hint: str = "") -> int:
    """The channels a share ``factor`` keeps of ``width``: ``floor(factor * width)``.

    Args:
        name: The field ``factor`` comes from (``"reduction"``, ``"compress_factor"``).
        factor: The share.
        width: The channels it is a share of.
        where: Where in the network, for the message (``"after the transition in block 0"``).
        hint: Appended to the message's advice (another value that is allowed).

    Raises:
        ValueError: The share keeps no channel; the message names the field, the place and
            the smallest share that keeps one.
    """
    kept = math.floor(factor * width)
    if kept < 1:
        raise ValueError(
            f"{name}={factor} leaves floor({factor} * {width}) = 0 channels {where}; use "
            f"{name} >= {1 / width:.3g}{hint}"
        )
    return kept


def resize_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinearly resize ``x`` to ``size`` (align_corners=True, as RANet does).

    Resizing to the size a tensor already has is the identity with align_corners=True, so it
    is skipped: the original spends about half its forward time on such no-op resizes.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=True)
