"""Layouts of RANet and MSDNet, computed from a config before any module is built.

``RANetConfig.plan()`` and ``MSDNetConfig.plan()`` compute these plain records; the models'
constructors only build what the plan says, and the configs validate themselves by
computing it (a width that would reach zero is an error that names the field to change).

Two words are kept apart throughout: ``downsampling`` is *spatial* (how many times smaller
than the image a map is, timm's ``reduction`` in :class:`~adanet.FeatureInfo`), while the
configs' ``reduction`` field is the *channel* share a transition keeps, as in the originals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "ExitPlan",
    "LayerPlan",
    "MSDNetPlan",
    "RANetBlockPlan",
    "RANetPlan",
    "stem_downsampling",
]


@dataclass(frozen=True)
class ExitPlan:
    """One exit: what its head sees and where that feature comes from.

    Attributes:
        index: The exit's number, in execution order.
        in_channels: Channels of the feature map the head classifies.
        downsampling: How many times smaller than the image that map is.
        module: Name (in ``named_modules()``) of the module producing it.
        scale: The scale (RANet branch; MSDNet's coarsest scale) the exit reads.
        block: The block after which the exit sits (0-based, within its branch for RANet).
    """

    index: int
    in_channels: int
    downsampling: int
    module: str
    scale: int
    block: int


@dataclass(frozen=True)
class RANetBlockPlan:
    """One RANet block (see :class:`~adanet.ScaleBlock` for the arguments' meaning).

    Attributes:
        in_channels: Input channels.
        num_layers: Dense layers.
        growth_rate: Channels each layer adds.
        coarse_channels: The fused coarser block's feature widths, or ``None`` (unfused).
        downsample: The last layer halves the resolution.
        transition: A 1×1 transition ends the block.
        out_channels: Output channels.
        downsampling: Spatial downsampling of the output relative to the image.
    """

    in_channels: int
    num_layers: int
    growth_rate: int
    coarse_channels: tuple[int, ...] | None
    downsample: bool
    transition: bool
    out_channels: int
    downsampling: int

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Widths of the block's input and of each layer's output (what a finer block fuses)."""
        return tuple(self.in_channels + j * self.growth_rate for j in range(self.num_layers + 1))


@dataclass(frozen=True)
class RANetPlan:
    """A RANet's layout. Scales are listed coarsest first, as its branches run.

    Attributes:
        stem_channels: Width of each scale's base feature, finest first (stem order).
        stem_downsample: Whether each stem layer halves the resolution, finest first.
        branches: Per scale (coarsest first), its blocks.
        exits: Every exit, in execution order.
    """

    stem_channels: tuple[int, ...]
    stem_downsample: tuple[bool, ...]
    branches: tuple[tuple[RANetBlockPlan, ...], ...]
    exits: tuple[ExitPlan, ...]


class LayerPlan(NamedTuple):
    """Where one MSDNet dense layer sits and what it does.

    Attributes:
        block: 0-based block (exit) the layer belongs to.
        in_scales: Scales the layer reads: the coarsest ``in_scales`` ones.
        out_scales: Scales it writes: the coarsest ``out_scales`` ones (one fewer than
            ``in_scales`` where the finest scale is dropped).
        in_channels: Base width before the layer (scale ``s`` has ``in_channels *
            growth_factors[s]`` channels).
        transition: Whether a 1×1 transition follows the layer.
        out_channels: Base width after the layer (and its transition).
    """

    block: int
    in_scales: int
    out_scales: int
    in_channels: int
    transition: bool
    out_channels: int


@dataclass(frozen=True)
class MSDNetPlan:
    """An MSDNet's layout.

    Attributes:
        stem_channels: Width of each scale's base feature, finest first.
        layers: Every dense layer, in order.
        exits: Every exit (one per block), in order.
    """

    stem_channels: tuple[int, ...]
    layers: tuple[LayerPlan, ...]
    exits: tuple[ExitPlan, ...]


def stem_downsampling(variant: str, downsample: tuple[bool, ...]) -> tuple[int, ...]:
    """Spatial downsampling of each stem output (finest first): the ImageNet stem's strided
    conv and max-pool divide by 4, and each downsampling layer by 2 more."""
    factor = 4 if variant == "imagenet" else 1
    out = []
    for i, down in enumerate(downsample):
        factor *= 2 if i > 0 and down else 1
        out.append(factor)
    return tuple(out)
