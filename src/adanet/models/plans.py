"""Layouts of RANet and MSDNet, computed from a config before any module is built.

``RANetConfig.plan()`` and ``MSDNetConfig.plan()`` return these plain records; the models'
constructors only build what the plan says, and the configs validate themselves by
computing it (a width that would reach zero is an error that names the field to change).

Two words are kept apart throughout: ``downsampling`` is *spatial* (how many times smaller
than the image a map is, timm's ``reduction`` in :class:`~adanet.FeatureInfo`), while the
configs' ``reduction`` field is the *channel* share a transition keeps, as in the originals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .msdnet_config import MSDNetConfig
    from .ranet_config import RANetConfig

__all__ = [
    "ExitPlan",
    "LayerPlan",
    "MSDNetPlan",
    "RANetBlockPlan",
    "RANetPlan",
    "plan_msdnet",
    "plan_ranet",
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


def _kept(reduction: float, width: int, where: str, other: str = "") -> int:
    # Channels a transition keeps; a config that would keep none is refused here, by name.
    kept = math.floor(reduction * width)
    if kept < 1:
        raise ValueError(
            f"reduction={reduction} leaves floor({reduction} * {width}) = 0 channels after "
            f"{where}; use reduction >= {1 / width:.3g}{other}"
        )
    return kept


def _ranet_branch(
    config: RANetConfig, scale: int, downsampling: int, coarser: tuple[RANetBlockPlan, ...]
) -> tuple[RANetBlockPlan, ...]:
    # One branch: its first len(coarser) blocks fuse the coarser branch's blocks.
    counts = config.blocks_per_scale
    level = config.scale_list[scale]
    # The branch halves its resolution where each coarser branch ended, to reach the
    # coarsest resolution with them. (The original picks these blocks with
    # nBlocks[:s+1][-(level-1):], which for level 1 is the whole list and downsamples
    # wrongly; a level-1 branch never needs to.)
    down_at = set(counts[:scale][-(level - 1) :]) if level > 1 else set()
    transition_at = {math.floor((i + 1) * counts[scale] / level) for i in range(level - 1)}
    growth = config.growth_rate * config.growth_factors[scale]
    channels = config.num_channels * config.growth_factors[scale]
    blocks: list[RANetBlockPlan] = []
    for b in range(counts[scale]):
        number = b + 1  # the original counts blocks from 1
        fused = b < len(coarser)
        layers = config.layers_per_block[b]
        width = channels + layers * growth
        if fused:
            width += math.floor(width * config.compress_factor)
        transition = number in transition_at
        where = f"the transition of block {b} in scale {scale}"
        out = _kept(config.reduction, width, where) if transition else width
        down = fused and number in down_at
        downsampling *= 2 if down else 1
        coarse = coarser[b].feature_channels if fused else None
        blocks.append(
            RANetBlockPlan(channels, layers, growth, coarse, down, transition, out, downsampling)
        )
        channels = out
    return tuple(blocks)


def plan_ranet(config: RANetConfig) -> RANetPlan:
    """The layout of a RANet (see :meth:`RANetConfig.plan`)."""
    scales = config.num_scales
    # The stem runs from the finest scale to the coarsest and strides wherever the scale
    # index changes.
    fine_first = config.scale_list[::-1]
    stem_channels = tuple(config.num_channels * f for f in config.growth_factors[::-1])
    stem_downsample = tuple(i > 0 and fine_first[i] != fine_first[i - 1] for i in range(scales))
    coarse_first = stem_downsampling(config.variant, stem_downsample)[::-1]
    branches: list[tuple[RANetBlockPlan, ...]] = []
    exits: list[ExitPlan] = []
    coarser: tuple[RANetBlockPlan, ...] = ()
    for s in range(scales):
        blocks = _ranet_branch(config, s, coarse_first[s], coarser)
        for b, block in enumerate(blocks[len(coarser) :], start=len(coarser)):
            module = f"branches.{s}.blocks.{b}"
            exits.append(ExitPlan(len(exits), block.out_channels, block.downsampling, module, s, b))
        branches.append(blocks)
        coarser = blocks
    return RANetPlan(stem_channels, stem_downsample, tuple(branches), tuple(exits))


def _msdnet_layers(config: MSDNetConfig) -> tuple[LayerPlan, ...]:
    total = config.num_layers
    scales = config.num_scales
    if config.prune == "min" and total < scales - 1:
        # The first layer would read fewer scales than the stem makes.
        raise ValueError(
            f"prune='min' with {total} dense layers cannot start from {scales} scales (the "
            f"first layer reads min({scales}, {total} + 1) of them); use at least {scales - 1} "
            "layers (base, step, num_blocks), fewer growth_factors, or prune='max'"
        )
    interval = math.ceil(total / scales)
    # The original builds a transition when the width is reduced *and* the rule holds; with
    # reduction 0 it builds none.
    min_transitions = {math.floor(total / 3), math.floor(2 * total / 3)}
    plans: list[LayerPlan] = []
    width = config.num_channels
    layer = 0  # 1-based index of the current layer, as the original counts
    for block, count in enumerate(config.layers_per_block):
        for _ in range(count):
            layer += 1
            if config.prune == "min":
                in_scales = min(scales, total - layer + 2)
                out_scales = min(scales, total - layer + 1)
                transition = layer in min_transitions
            else:
                in_scales = scales - max(0, layer - 2) // interval
                out_scales = scales - (layer - 1) // interval
                transition = in_scales > out_scales
            transition = transition and config.reduction > 0
            grown = width + config.growth_rate
            where = f"the transition in block {block}"
            no_transitions = " or 0 (no transitions)"
            out = _kept(config.reduction, grown, where, no_transitions) if transition else grown
            plans.append(LayerPlan(block, in_scales, out_scales, width, transition, out))
            width = out
    return tuple(plans)


def plan_msdnet(config: MSDNetConfig) -> MSDNetPlan:
    """The layout of an MSDNet (see :meth:`MSDNetConfig.plan`)."""
    factors = config.growth_factors
    layers = _msdnet_layers(config)
    coarsest = stem_downsampling(config.variant, (True,) * config.num_scales)[-1]
    exits = []
    for b in range(config.num_blocks):
        width = [plan for plan in layers if plan.block == b][-1].out_channels
        # The exits see the coarsest scale only.
        exits.append(
            ExitPlan(b, width * factors[-1], coarsest, f"blocks.{b}", config.num_scales - 1, b)
        )
    stem = tuple(config.num_channels * f for f in factors)
    return MSDNetPlan(stem, layers, tuple(exits))
