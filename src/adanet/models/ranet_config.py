"""``RANetConfig``: every option of the original RANet, validated, with the published presets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from adanet._validation import (
    require_bool,
    require_choice,
    require_fraction,
    require_int,
    require_int_tuple,
)
from adanet.blocks._common import floor_channels
from adanet.models.config_base import NetworkConfig, cifar_presets
from adanet.models.plans import (
    ExitPlan,
    RANetBlockPlan,
    RANetPlan,
    stem_downsampling,
)

__all__ = ["RANetConfig"]

StepMode = Literal["even", "lg"]


def _preset_values() -> dict[str, dict[str, Any]]:
    # train_cifar.sh of the original repository.
    cifar = {
        "num_blocks": 2,
        "num_channels": 16,
        "growth_rate": 6,
        "growth_factors": (4, 2, 1, 1),
        "bottleneck_factors": (4, 2, 1, 1),
        "block_step": 2,
        "scale_list": (1, 2, 3, 3),
        "step": 4,
        "step_mode": "even",
        "variant": "cifar",
    }
    # The original README's budgeted-batch CIFAR command (3 scales, step 2, lg).
    budgeted = {
        "num_channels": 16,
        "step": 2,
        "step_mode": "lg",
        "scale_list": (1, 2, 3),
        "growth_factors": (4, 2, 1),
        "bottleneck_factors": (4, 2, 1),
        "variant": "cifar",
    }
    return {
        **cifar_presets("", cifar),
        **cifar_presets("_budgeted", budgeted),
        # The paper's ImageNet model.
        "imagenet": {
            "num_channels": 64,
            "growth_rate": 16,
            "step": 8,
            "step_mode": "even",
            "scale_list": (1, 2, 3, 4),
            "growth_factors": (4, 2, 2, 1),
            "bottleneck_factors": (4, 2, 2, 1),
            "variant": "imagenet",
            "num_classes": 1000,
        },
    }


@dataclass(frozen=True)
class RANetConfig(NetworkConfig):
    """The architecture of a RANet (Yang et al., "Resolution Adaptive Networks", CVPR 2020).

    Field names are pythonic spellings of the original ``main.py`` options (``nBlocks`` →
    ``num_blocks`` and so on; the docs list them all). Scales are numbered from the
    coarsest (scale 0, the first to run) to the finest, as in the original.

    The fields every network has (``variant``, ``num_classes``, ``in_channels``,
    ``memory_efficient``, ``norm``, ``act``) are keyword-only and documented in
    :class:`~adanet.models.NetworkConfig`.

    Attributes:
        num_blocks: Blocks in the coarsest scale (``--nBlocks``); scale ``s`` has
            ``num_blocks + s * block_step`` blocks.
        num_channels: Base width of the stem (``--nChannels``); scale ``s`` starts with
            ``num_channels * growth_factors[s]`` channels.
        growth_rate: Channels each dense layer adds, times ``growth_factors[s]``
            (``--growthRate``).
        growth_factors: Per-scale width multipliers, coarsest first (``--grFactor``).
        bottleneck_factors: Per-scale bottleneck widths: a dense layer's 1×1 conv has at
            most ``factor * growth`` channels (``--bnFactor``).
        block_step: Extra blocks in each finer scale (``--block-step``).
        scale_list: Resolution index of each scale, coarsest first, non-decreasing
            (``--scale-list``); equal neighbours share a resolution.
        compress_factor: Share of a fusion layer's new channels that come from the coarser
            scale (``--compress-factor``).
        step: Dense layers per block (``--step``); with ``step_mode="lg"`` block ``b`` has
            ``step * (b + 1)`` layers.
        step_mode: ``"even"`` or ``"lg"`` (``--stepmode``).
        reduction: Channel reduction of transition layers (``--reduction``).
        bn_after: Conv-norm-act layers (the original's only variant) when true; pre-activation
            norm-act-conv when false.
    """

    num_blocks: int = 2
    num_channels: int = 16
    growth_rate: int = 6
    growth_factors: tuple[int, ...] = (4, 2, 1)
    bottleneck_factors: tuple[int, ...] = (4, 2, 1)
    block_step: int = 2
    scale_list: tuple[int, ...] = (1, 2, 3)
    compress_factor: float = 0.25
    step: int = 4
    step_mode: StepMode = "even"
    reduction: float = 0.5
    bn_after: bool = True

    _network: ClassVar[str] = "RANet"
    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = _preset_values()

    def _validate(self) -> None:
        require_int("num_blocks", self.num_blocks, 1)
        require_int("num_channels", self.num_channels, 1)
        require_int("growth_rate", self.growth_rate, 1)
        require_int("block_step", self.block_step, 0)
        require_int("step", self.step, 1)
        require_int_tuple("scale_list", self.scale_list, 1)
        for coarser, finer in zip(self.scale_list, self.scale_list[1:], strict=False):
            if finer < coarser:
                raise ValueError(
                    "scale_list must be non-decreasing (coarsest scale first, e.g. (1, 2, 3)), "
                    f"got {self.scale_list!r}"
                )
        scales = len(self.scale_list)
        require_int_tuple("growth_factors", self.growth_factors, 1, scales)
        require_int_tuple("bottleneck_factors", self.bottleneck_factors, 1, scales)
        require_fraction(
            "compress_factor",
            self.compress_factor,
            low=0.0,
            high=1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        require_fraction(
            "reduction", self.reduction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=True
        )
        require_choice("step_mode", self.step_mode, ("even", "lg"))
        require_bool("bn_after", self.bn_after)
        for scale in range(1, scales):
            # A fusion layer splits its growth between the coarse and the fine path; both
            # must get at least one channel or a conv with zero outputs is built.
            growth = self.growth_rate * self.growth_factors[scale]
            coarse = math.floor(growth * self.compress_factor)
            if coarse < 1 or growth - coarse < 1:
                raise ValueError(
                    f"compress_factor={self.compress_factor} gives scale {scale} (growth "
                    f"{growth}) {coarse} channels from the coarser scale and {growth - coarse} "
                    "of its own; both must be at least 1: choose compress_factor in "
                    f"[{1 / growth:.3g}, {1 - 1 / growth:.3g}] or a larger growth_rate"
                )
        self.plan()  # raises where a transition would keep no channel

    # ----------------------------------------------------------------------------- derived

    @property
    def num_scales(self) -> int:
        """Number of scales (resolution branches)."""
        return len(self.scale_list)

    @property
    def blocks_per_scale(self) -> tuple[int, ...]:
        """Blocks in each scale, coarsest first."""
        return tuple(self.num_blocks + s * self.block_step for s in range(self.num_scales))

    @property
    def num_exits(self) -> int:
        """Number of exits: one per block of the finest scale."""
        return self.blocks_per_scale[-1]

    @property
    def layers_per_block(self) -> tuple[int, ...]:
        """Dense layers in each block (0-based; the same in every scale)."""
        return tuple(
            self.step * (b + 1) if self.step_mode == "lg" else self.step
            for b in range(self.num_exits)
        )

    def plan(self) -> RANetPlan:
        """The network's layout: stem, every block of every branch, every exit.

        Raises:
            ValueError: A transition would keep no channel (``reduction`` too small).
        """
        return _plan_ranet(self)


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
        where = f"after the transition of block {b} in scale {scale}"
        out = floor_channels("reduction", config.reduction, width, where) if transition else width
        down = fused and number in down_at
        downsampling *= 2 if down else 1
        coarse = coarser[b].feature_channels if fused else None
        blocks.append(
            RANetBlockPlan(channels, layers, growth, coarse, down, transition, out, downsampling)
        )
        channels = out
    return tuple(blocks)


def _plan_ranet(config: RANetConfig) -> RANetPlan:
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
