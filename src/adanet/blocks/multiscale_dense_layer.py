"""``MultiScaleDenseLayer`` and ``MultiScaleTransition``: MSDNet's layers, which run at
several resolutions at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks._common import ActivationLayer, NormLayer, bottleneck_conv, conv_norm_act
from adanet.blocks._shared_recompute import (
    concat_remembering,
    efficient_training,
    pieces_of,
    run_from_pieces,
)

__all__ = ["CrossScaleDenseUnit", "MultiScaleDenseLayer", "MultiScaleTransition"]


def _dense_conv(
    in_channels: int,
    out_channels: int,
    *,
    bottleneck: bool,
    bottleneck_width: int,
    stride: int,
    norm_layer: NormLayer,
    activation_layer: ActivationLayer,
) -> nn.Module:
    if bottleneck:
        return bottleneck_conv(
            in_channels,
            out_channels,
            bottleneck_width=bottleneck_width,
            stride=stride,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )
    plain: nn.Module = conv_norm_act(
        in_channels,
        out_channels,
        3,
        stride,
        norm_layer=norm_layer,
        activation_layer=activation_layer,
    )
    return plain


class CrossScaleDenseUnit(nn.Module):
    """A dense layer at one scale, optionally also fed the next finer scale.

    Without ``finer_channels`` it is a DenseNet layer: ``[x, conv(x)]`` with ``growth_rate``
    new channels (the original MSDNet's ``ConvNormal``). With it, half the new channels come
    from a stride-2 conv on the finer feature and half from ``x``: ``[x, down(finer),
    conv(x)]`` (``ConvDownNormal``).

    Args:
        in_channels: Channels of this scale's input ``x``.
        growth_rate: Channels added (even when ``finer_channels`` is given).
        finer_channels: Channels of the finer scale's feature, or ``None``.
        bottleneck: Put a 1×1 conv before each 3×3 conv.
        bottleneck_width: The 1×1 conv on ``x`` has at most ``bottleneck_width * its
            output`` channels.
        finer_bottleneck_width: The same for the conv on the finer feature.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.
        memory_efficient: In training, keep for backward only each convolution's output and
            the inputs' channel pieces (the output remembers its pieces, see
            :func:`~adanet.blocks._shared_recompute.concat_remembering`): backward
            recomputes the concatenations and norm → activation, never a convolution.

    Shape:
        ``x``: ``[N, in_channels, H, W]``; ``finer``: ``[N, finer_channels, 2H or 2H-1, …]``
        → ``[N, in_channels + growth_rate, H, W]``.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        *,
        finer_channels: int | None = None,
        bottleneck: bool = True,
        bottleneck_width: int = 4,
        finer_bottleneck_width: int = 4,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        require_int("in_channels", in_channels, 1)
        require_int("growth_rate", growth_rate, 1)
        if finer_channels is not None and growth_rate % 2:
            raise ValueError(
                f"growth_rate must be even when a finer scale feeds the layer (half of it "
                f"comes from each input), got {growth_rate}"
            )
        own = growth_rate if finer_channels is None else growth_rate // 2
        self.in_channels = in_channels
        self.out_channels = in_channels + growth_rate
        self.memory_efficient = memory_efficient
        self.down: nn.Module | None = None
        if finer_channels is not None:
            self.down = _dense_conv(
                finer_channels,
                growth_rate // 2,
                bottleneck=bottleneck,
                bottleneck_width=finer_bottleneck_width,
                stride=2,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            )
        self.conv = _dense_conv(
            in_channels,
            own,
            bottleneck=bottleneck,
            bottleneck_width=bottleneck_width,
            stride=1,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )

    def forward(self, x: Tensor, finer: Tensor | None = None) -> Tensor:
        if self.down is not None and finer is None:
            raise ValueError("this layer is fed by a finer scale: pass its feature as `finer`")
        if efficient_training(self.memory_efficient, self):
            own = pieces_of(x)
            new = []
            if self.down is not None and finer is not None:
                new.append(run_from_pieces(self.down, pieces_of(finer)))
            return concat_remembering([*own, *new, run_from_pieces(self.conv, own)])
        return self._grow(x, finer)

    def _grow(self, x: Tensor, finer: Tensor | None) -> Tensor:
        if self.down is None or finer is None:
            return torch.cat([x, self.conv(x)], dim=1)  # [N, C + growth, H, W]
        # The order [x, from finer, own] is the original's; weights depend on it.
        return torch.cat([x, self.down(finer), self.conv(x)], dim=1)  # [N, C + growth, H, W]


class MultiScaleDenseLayer(nn.Module):
    """One MSDNet layer: a :class:`CrossScaleDenseUnit` at each output scale, each fed its
    own scale and the next finer one.

    The layer reads ``len(in_channels)`` scales, finest first, and writes the coarsest
    ``len(growth_rates)`` of them: as many (the finest output has no finer input) or one
    fewer (the finest input only feeds the next scale and is then dropped).

    Args:
        in_channels: Channels of each input scale, finest first.
        growth_rates: Channels added at each output scale, finest first.
        bottleneck_widths: Bottleneck factor of each input scale.
        bottleneck: Put a 1×1 conv before each 3×3 conv.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.
        memory_efficient: Units recompute their activations in backward.

    Shape:
        A list of ``[N, in_channels[i], H_i, W_i]`` maps, finest first, each half the size of
        the previous → the coarsest ``len(growth_rates)`` of them, each grown by its
        ``growth_rates`` entry.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        growth_rates: Sequence[int],
        *,
        bottleneck_widths: Sequence[int],
        bottleneck: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        ins, outs = len(in_channels), len(growth_rates)
        if outs < 1 or ins - outs not in (0, 1):
            raise ValueError(
                f"a multi-scale dense layer writes the same number of scales as it reads, or "
                f"one fewer; got {ins} input and {outs} output scales"
            )
        if len(bottleneck_widths) != ins:
            raise ValueError(
                f"bottleneck_widths needs one entry per input scale ({ins}), got "
                f"{len(bottleneck_widths)}"
            )
        self.dropped = ins - outs
        units = []
        for i, growth in enumerate(growth_rates):
            j = i + self.dropped  # the input scale this output continues
            units.append(
                CrossScaleDenseUnit(
                    in_channels[j],
                    growth,
                    finer_channels=in_channels[j - 1] if j > 0 else None,
                    bottleneck=bottleneck,
                    bottleneck_width=bottleneck_widths[j],
                    finer_bottleneck_width=bottleneck_widths[j - 1] if j > 0 else 1,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer,
                    memory_efficient=memory_efficient,
                )
            )
        self.units = nn.ModuleList(units)
        self.out_channels = [unit.out_channels for unit in units]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        if len(features) != len(self.units) + self.dropped:
            raise ValueError(
                f"expected {len(self.units) + self.dropped} scales, got {len(features)}"
            )
        out = []
        for i, unit in enumerate(self.units):
            j = i + self.dropped
            out.append(unit(features[j], features[j - 1] if j > 0 else None))
        return out


class MultiScaleTransition(nn.Module):
    """A 1×1 conv-norm-act at each scale, to reduce the width (the original's transition
    layer, a ``ParallelModule`` of ``ConvBasic``).

    Args:
        in_channels: Channels of each scale, finest first.
        out_channels: Channels after the transition, per scale.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        *,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels) or not in_channels:
            raise ValueError(
                f"in_channels ({len(in_channels)}) and out_channels ({len(out_channels)}) "
                "need one entry per scale"
            )
        self.convs = nn.ModuleList(
            conv_norm_act(c_in, c_out, 1, norm_layer=norm_layer, activation_layer=activation_layer)
            for c_in, c_out in zip(in_channels, out_channels, strict=True)
        )
        self.out_channels = list(out_channels)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        if len(features) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} scales, got {len(features)}")
        if self.training and torch.is_grad_enabled():
            # Features of memory-efficient layers remember their channel pieces: reading
            # those keeps their concatenation out of the tensors saved for backward.
            return [
                conv(x) if len(pieces_of(x)) == 1 else run_from_pieces(conv, pieces_of(x))
                for conv, x in zip(self.convs, features, strict=True)
            ]
        return [conv(x) for conv, x in zip(self.convs, features, strict=True)]
