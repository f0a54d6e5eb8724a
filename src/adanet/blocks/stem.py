"""``MultiScaleStem``: the first layers, one feature map per scale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor, nn

from adanet.blocks._common import ActivationLayer, NormLayer, conv_norm_act

__all__ = ["MultiScaleStem"]


class MultiScaleStem(nn.Module):
    """Makes the base feature of every scale, finest first, each from the previous one.

    The first layer is a 3×3 conv-norm-act for small images (``"cifar"``), or a 7×7/2
    conv-norm-act (with bias, as the originals) followed by a 3×3/2 max-pool for large ones
    (``"imagenet"``). Every later layer is a 3×3 conv-norm-act, strided where
    ``downsample[i]`` is true.

    Args:
        in_channels: Image channels.
        out_channels: Channels of each scale's feature, finest first.
        downsample: Whether layer ``i`` halves the resolution (``downsample[0]`` is ignored:
            the first layer's stride is set by ``variant``).
        variant: ``"cifar"`` or ``"imagenet"``.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.

    Shape:
        ``[N, in_channels, H, W]`` → a list of ``len(out_channels)`` maps, finest first.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: Sequence[int],
        downsample: Sequence[bool],
        *,
        variant: Literal["cifar", "imagenet"] = "cifar",
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        if len(out_channels) != len(downsample) or not out_channels:
            raise ValueError(
                f"out_channels ({len(out_channels)}) and downsample ({len(downsample)}) must "
                "have one entry per scale"
            )
        first = _first_layer(in_channels, out_channels[0], variant, norm_layer, activation_layer)
        layers = [first]
        for i in range(1, len(out_channels)):
            stride = 2 if downsample[i] else 1
            layers.append(
                conv_norm_act(
                    out_channels[i - 1],
                    out_channels[i],
                    3,
                    stride,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer,
                )
            )
        self.layers = nn.ModuleList(layers)
        self.out_channels = list(out_channels)
        #: Total downsampling of each output relative to the input, finest first.
        self.reductions = []
        reduction = 1 if variant == "cifar" else 4
        for i in range(len(out_channels)):
            if i > 0 and downsample[i]:
                reduction *= 2
            self.reductions.append(reduction)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


def _first_layer(
    in_channels: int,
    out_channels: int,
    variant: str,
    norm_layer: NormLayer,
    activation_layer: ActivationLayer,
) -> nn.Module:
    # 3x3 conv-norm-act for small images; 7x7/2 conv-norm-act (with bias, as the originals)
    # and a 3x3/2 max-pool for large ones.
    layers: dict[str, Any] = {"norm_layer": norm_layer, "activation_layer": activation_layer}
    if variant == "cifar":
        plain: nn.Module = conv_norm_act(in_channels, out_channels, 3, **layers)
        return plain
    if variant == "imagenet":
        return nn.Sequential(
            conv_norm_act(in_channels, out_channels, 7, 2, bias=True, **layers),
            nn.MaxPool2d(3, 2, 1),
        )
    raise ValueError(f"variant must be 'cifar' or 'imagenet', got {variant!r}")
