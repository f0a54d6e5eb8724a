"""``ScaleBlock`` and ``ScaleBranch``: the blocks at one resolution (RANet's "scale flow")."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Any, cast

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks._common import (
    ActivationLayer,
    Feature,
    NormLayer,
    as_tensor,
    conv_norm_act,
    floor_channels,
    resize_to,
)
from adanet.blocks._shared_recompute import (
    concat_remembering,
    efficient_training,
    pieces_of,
    run_from_pieces,
)
from adanet.blocks.dense_layer import DenseLayer
from adanet.blocks.fusion_block import FusionBlock

__all__ = ["ScaleBlock", "ScaleBranch"]


class ScaleBlock(nn.Module):
    """``num_layers`` dense layers at one scale, optionally fused with a coarser scale, then
    an optional 1×1 transition.

    Without ``coarse_channels`` every layer is a :class:`DenseLayer` (the original's
    ``_BlockNormal``). With it (``_BlockUpNormal``) layer ``j`` is a :class:`FusionBlock`
    fed the ``j``-th intermediate feature of the coarser scale's block, and after the last
    layer the coarser block's final feature is compressed by a 1×1 conv, upsampled and
    appended.

    Args:
        in_channels: Input channels.
        num_layers: Dense layers in the block.
        growth_rate: Channels each layer adds.
        bottleneck_width: Bottleneck factor of this scale.
        coarse_channels: Channels of the coarser block's features (its input, then each
            layer's output: ``num_layers + 1`` or more entries), or ``None`` for a plain
            block.
        coarse_bottleneck_width: Bottleneck factor of the coarser scale.
        compress_factor: Share of channels taken from the coarser scale.
        downsample: The last layer halves the resolution.
        transition: End with a 1×1 conv-norm-act to ``floor(reduction * channels)``.
        reduction: Transition reduction.
        norm_first: Pre-activation dense layers.
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.
        memory_efficient: In training, the block's features stay in channel pieces and only
            each convolution's output is kept for backward: backward recomputes the
            concatenations and norm → activation, never a convolution (the tail too).

    Attributes:
        out_channels: Channels of the block's output.
        feature_channels: Channels of the features :meth:`forward` exposes for a finer block
            to fuse.
    """

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        growth_rate: int,
        *,
        bottleneck_width: int = 4,
        coarse_channels: Sequence[int] | None = None,
        coarse_bottleneck_width: int = 4,
        compress_factor: float = 0.25,
        downsample: bool = False,
        transition: bool = False,
        reduction: float = 0.5,
        norm_first: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        require_int("num_layers", num_layers, 1)
        require_int("growth_rate", growth_rate, 1)
        if coarse_channels is not None and len(coarse_channels) < num_layers + 1:
            raise ValueError(
                f"a fused block of {num_layers} layers needs {num_layers + 1} coarse feature "
                f"widths (the coarser block's input and each layer's output), got "
                f"{len(coarse_channels)}"
            )
        self.fused = coarse_channels is not None
        self.memory_efficient = memory_efficient
        self.feature_channels = [in_channels + j * growth_rate for j in range(num_layers + 1)]
        shared: dict[str, Any] = {
            "bottleneck_width": bottleneck_width,
            "norm_first": norm_first,
            "norm_layer": norm_layer,
            "activation_layer": activation_layer,
            "memory_efficient": memory_efficient,
        }
        fusion = {
            "compress_factor": compress_factor,
            "coarse_bottleneck_width": coarse_bottleneck_width,
        }
        coarse = None if coarse_channels is None else (coarse_channels, fusion)
        widths = self.feature_channels[:-1]
        self.layers = nn.ModuleList(_layers(widths, growth_rate, downsample, coarse, shared))
        norm_act: dict[str, Any] = {"norm_layer": norm_layer, "activation_layer": activation_layer}
        channels = self.feature_channels[-1]
        self.fuse_last: nn.Module | None = None
        if coarse_channels is not None:
            where = "of the coarser block's last feature"
            extra = floor_channels("compress_factor", compress_factor, channels, where)
            self.fuse_last = conv_norm_act(coarse_channels[num_layers], extra, 1, **norm_act)
            channels += extra
        self.transition: nn.Module | None = None
        if transition:
            reduced = floor_channels("reduction", reduction, channels, "in the transition")
            self.transition = conv_norm_act(channels, reduced, 1, **norm_act)
            channels = reduced
        self.out_channels = channels

    def _check_coarse(self, coarse: Sized | None) -> None:
        # A fused block reads the coarser block's input and each of its layers' outputs.
        if self.fused and (coarse is None or len(coarse) < len(self.layers) + 1):
            got = "none" if coarse is None else str(len(coarse))
            raise ValueError(
                f"this fused block needs {len(self.layers) + 1} coarse features, got {got}"
            )

    def forward(
        self, x: Tensor, coarse: Sequence[Feature] | None = None
    ) -> tuple[Tensor, list[Feature]]:
        """Run the block.

        Args:
            x: ``[N, in_channels, H, W]``.
            coarse: The coarser block's features (required when the block is fused).

        Returns:
            The output, and the features a finer block fuses: the input and each layer's
            output. In memory-efficient training a feature may be a list of channel pieces
            (see :func:`~adanet.blocks.as_tensor`).
        """
        self._check_coarse(coarse)
        if efficient_training(self.memory_efficient, self):
            return self._forward_in_pieces(x, coarse)
        features: list[Feature] = [x]
        for j, layer in enumerate(self.layers):
            # Each layer returns [input, new]: growth_rate more channels.
            x = layer(x) if coarse is None else layer(x, as_tensor(coarse[j]))
            features.append(x)
        return self._tail(x, None if coarse is None else coarse[len(self.layers)]), features

    def _tail(self, x: Tensor, last: Feature | None) -> Tensor:
        # The block's end: append the coarser block's compressed last feature, then reduce.
        if self.fuse_last is not None and last is not None:
            extra = resize_to(self.fuse_last(as_tensor(last)), x.shape[-2:])
            x = torch.cat([x, extra], dim=1)
        if self.transition is not None:
            x = self.transition(x)
        return x

    def _forward_in_pieces(
        self, x: Tensor, coarse: Sequence[Feature] | None
    ) -> tuple[Tensor, list[Feature]]:
        # Memory-efficient training: the dense features stay lists of channel pieces, each
        # layer's new channels; every convolution reads their concatenation through
        # run_from_pieces, which saves the pieces rather than the concatenation (the
        # shared-storage recomputation of Pleiss et al., 2017).
        pieces = pieces_of(x)
        features: list[Feature] = [x]
        for j, module in enumerate(self.layers):
            layer = cast(DenseLayer | FusionBlock, module)
            if isinstance(layer, DenseLayer):
                pieces = layer.output_pieces(pieces)
            else:
                assert coarse is not None  # checked on entry: fused blocks get features
                pieces = layer.output_pieces(pieces, _as_pieces(coarse[j]))
            features.append(list(pieces))
        if self.fuse_last is not None and coarse is not None:
            extra = run_from_pieces(self.fuse_last, _as_pieces(coarse[len(self.layers)]))
            pieces = [*pieces, resize_to(extra, pieces[0].shape[-2:])]
        if self.transition is not None:
            return run_from_pieces(self.transition, pieces), features
        return concat_remembering(pieces), features


def _layers(
    widths: Sequence[int],
    growth_rate: int,
    downsample: bool,
    coarse: tuple[Sequence[int], dict[str, Any]] | None,
    shared: dict[str, Any],
) -> list[nn.Module]:
    """A block's dense layers, one per input width: each a :class:`DenseLayer`, or with
    ``coarse = (coarse feature widths, fusion arguments)`` a :class:`FusionBlock` fed the
    coarser block's features. Only the last layer may halve the resolution."""
    layers: list[nn.Module] = []
    for j, width in enumerate(widths):
        halve = downsample and j == len(widths) - 1
        if coarse is None:
            layers.append(DenseLayer(width, growth_rate, stride=2 if halve else 1, **shared))
        else:
            channels, fusion = coarse
            layers.append(
                FusionBlock(width, channels[j], growth_rate, downsample=halve, **fusion, **shared)
            )
    return layers


def _as_pieces(feature: Feature) -> list[Tensor]:
    return pieces_of(feature) if isinstance(feature, Tensor) else list(feature)


class ScaleBranch(nn.Module):
    """The blocks at one resolution, run in order (RANet's "scale flow").

    The first blocks may be fused with the coarser branch (block ``b`` takes the features of
    the coarser branch's block ``b``); :meth:`forward` returns every block's features so that
    the next finer branch can fuse them.

    Args:
        blocks: The blocks, in order.
    """

    def __init__(self, blocks: Sequence[ScaleBlock]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a ScaleBranch needs at least one block")
        self.blocks = nn.ModuleList(blocks)
        self.num_fused = sum(1 for block in blocks if block.fused)
        if any(not block.fused for block in blocks[: self.num_fused]):
            raise ValueError("fused blocks must come first in a ScaleBranch")

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> ScaleBlock:
        """Block ``index``: networks with several exits per branch run blocks one by one."""
        return cast(ScaleBlock, self.blocks[index])

    def forward(
        self, x: Tensor, coarse: Sequence[Sequence[Feature]] | None = None
    ) -> tuple[Tensor, list[list[Feature]]]:
        """Run every block.

        Args:
            x: The branch's input.
            coarse: Per block of the coarser branch, its features (needed for the first
                ``num_fused`` blocks).

        Returns:
            The last block's output, and every block's features.
        """
        features: list[list[Feature]] = []
        for b, block in enumerate(self.blocks):
            x, block_features = block(x, coarse[b] if block.fused and coarse else None)
            features.append(block_features)
        return x, features
