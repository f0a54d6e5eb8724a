"""``RANet``: Resolution Adaptive Networks (Yang et al., CVPR 2020), built from adanet's blocks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, cast

from torch import Tensor, nn

from ..blocks import ExitHead, MultiScaleStem, ScaleBlock, ScaleBranch
from ..protocol import EarlyExitNetwork
from .ranet_config import RANetConfig

__all__ = ["RANet"]


@dataclass(frozen=True)
class _ExitPosition:
    scale: int  # branch that owns the exit
    block: int  # 0-based block of that branch after which the exit sits


class RANet(EarlyExitNetwork):
    """A RANet: scale branches from the coarsest to the finest resolution, each fusing the
    features of the coarser one, with an exit after each of its last blocks.

    Exits are numbered as in the original: the coarsest branch's exits first. ``forward(x)``
    returns the list of every exit's logits; a sample leaving at exit ``k`` only pays for the
    branches and blocks up to it (see :func:`adanet.early_exit`).

    Args:
        config: The architecture.

    Attributes:
        config: The architecture.
        stem: Makes each scale's base feature.
        branches: One :class:`~adanet.ScaleBranch` per scale, coarsest first.
        exits: The exit heads.
        feature_info: Per exit, the channels (``num_chs``), downsampling (``reduction``)
            and ``module`` name of the feature map it sees, as timm's ``feature_info``.
    """

    def __init__(self, config: RANetConfig) -> None:
        super().__init__()
        if not isinstance(config, RANetConfig):
            raise TypeError(f"expected a RANetConfig, got {type(config).__name__}")
        self.config = config
        self.in_channels = config.in_channels
        norm_first = not config.bn_after
        scales = config.num_scales
        blocks_per_scale = config.blocks_per_scale

        # The stem runs from the finest scale to the coarsest and strides wherever the scale
        # index changes.
        fine_first = config.scale_list[::-1]
        self.stem = MultiScaleStem(
            config.in_channels,
            [config.num_channels * f for f in config.growth_factors[::-1]],
            [i > 0 and fine_first[i] != fine_first[i - 1] for i in range(scales)],
            variant=config.variant,
        )
        stem_reduction = self.stem.reductions[::-1]  # coarsest first

        branches: list[ScaleBranch] = []
        exits: list[ExitHead] = []
        positions: list[_ExitPosition] = []
        feature_info: list[dict[str, Any]] = []
        coarse_feature_channels: list[list[int]] = []
        for s in range(scales):
            channels = config.num_channels * config.growth_factors[s]
            growth = config.growth_rate * config.growth_factors[s]
            fused_blocks = blocks_per_scale[s - 1] if s > 0 else 0
            level = config.scale_list[s]
            # This branch halves its resolution where each coarser branch ended, so that it
            # reaches the coarsest resolution with them. The original picks these blocks with
            # nBlocks[:s+1][-(level-1):], which for level 1 is the whole list and wrongly
            # downsamples; a level-1 branch never needs to.
            down_at = set(blocks_per_scale[:s][-(level - 1) :]) if level > 1 else set()
            transition_at = {
                math.floor((i + 1) * blocks_per_scale[s] / level) for i in range(level - 1)
            }
            reduction = stem_reduction[s]
            blocks: list[ScaleBlock] = []
            feature_channels: list[list[int]] = []
            for b in range(blocks_per_scale[s]):
                number = b + 1  # the original counts blocks from 1
                fused = number <= fused_blocks
                block = ScaleBlock(
                    channels,
                    config.layers_in_block(b),
                    growth,
                    bottleneck_width=config.bottleneck_factors[s],
                    coarse_channels=coarse_feature_channels[b] if fused else None,
                    coarse_bottleneck_width=config.bottleneck_factors[s - 1] if s > 0 else 1,
                    compress_factor=config.compress_factor,
                    downsample=fused and number in down_at,
                    transition=number in transition_at,
                    reduction=config.reduction,
                    norm_first=norm_first,
                    memory_efficient=config.memory_efficient,
                )
                if fused and number in down_at:
                    reduction *= 2
                blocks.append(block)
                feature_channels.append(block.feature_channels)
                channels = block.out_channels
                if not fused:
                    hidden = 128 if config.variant == "cifar" else None
                    exits.append(ExitHead(channels, config.num_classes, hidden_channels=hidden))
                    positions.append(_ExitPosition(s, b))
                    feature_info.append(
                        {
                            "exit": len(positions) - 1,
                            "num_chs": channels,
                            "reduction": reduction,
                            "module": f"branches.{s}.blocks.{b}",
                        }
                    )
            branches.append(ScaleBranch(blocks))
            coarse_feature_channels = feature_channels

        self.branches = nn.ModuleList(branches)
        self.exits = nn.ModuleList(exits)
        self._positions = tuple(positions)
        self.feature_info = feature_info
        # Below this size the deepest maps are smaller than one pixel before the exit heads'
        # two strided convs; the original only runs at 32 or 224.
        self.min_input_size = max(info["reduction"] for info in feature_info) * 4
        self._init_weights()

    @classmethod
    def from_config(cls, config: RANetConfig | str) -> RANet:
        """Build from a config or a preset name (see :meth:`RANetConfig.preset_names`)."""
        if isinstance(config, str):
            config = RANetConfig.preset(config)
        return cls(config)

    def _init_weights(self) -> None:
        # The original initialises the branches and heads this way and leaves the stem at
        # PyTorch's defaults; matching it keeps training runs comparable.
        for part in (self.branches, self.exits):
            for module in part.modules():
                if isinstance(module, nn.Conv2d):
                    fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                    nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ early-exit protocol

    def begin(self, x: Tensor) -> dict[str, Any]:
        stem = self.stem(x)[::-1]  # coarsest first, one [N, C_s, H_s, W_s] per scale
        # "pending": base features of the finer branches, not yet started;
        # "coarse": per block, the features of the previous (coarser) branch, to fuse;
        # "features": per block so far, this branch's features, for the next branch.
        return {"x": stem[0], "pending": stem[1:], "coarse": [], "features": []}

    def advance(self, state: dict[str, Any], exit_index: int) -> tuple[Tensor, dict[str, Any]]:
        position = self._positions[exit_index]
        previous = self._positions[exit_index - 1] if exit_index > 0 else None
        x: Tensor = state["x"]
        pending: list[Tensor] = state["pending"]
        coarse: list[list[Tensor]] = state["coarse"]
        features: list[list[Tensor]] = state["features"]
        if previous is None or previous.scale != position.scale:
            start = 0
            if previous is not None:  # the previous branch is complete: start the next one
                x, pending, coarse, features = pending[0], pending[1:], features, []
        else:
            start = previous.block + 1
        branch = cast(ScaleBranch, self.branches[position.scale])
        keep_features = position.scale < len(self.branches) - 1  # the finest feeds nobody
        for b in range(start, position.block + 1):
            block = branch[b]
            x, block_features = block(x, coarse[b] if block.fused else None)
            if keep_features:
                features = [*features, block_features]
        if position.block + 1 >= branch.num_fused:
            coarse = []  # every fused block has run: the coarser features are not needed
        return x, {"x": x, "pending": pending, "coarse": coarse, "features": features}

    # ------------------------------------------------------------------ reference checkpoints

    def translate_reference_key(self, key: str) -> str:
        """Map a parameter name of the original RANet (without ``module.``) to this model's.

        Used by :func:`adanet.load_reference_checkpoint`.
        """
        for pattern, replacement in _REFERENCE_KEYS:
            new, count = pattern.subn(replacement, key)
            if count:
                return self._translate_bottleneck(new)
        return key

    def _translate_bottleneck(self, key: str) -> str:
        # The original's bottleneck is one flat Sequential (conv, bn, relu, conv, bn, relu);
        # ours nests two conv-norm-act blocks when norm comes after the conv.
        match = re.search(r"\.(conv|coarse_conv)\.net\.(\d+)\.", key)
        if match is None:
            return key
        index = int(match.group(2))
        if self.config.bn_after:
            local = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1"}.get(index, f"x{index}")
        else:
            local = str(index)
        return key[: match.start()] + f".{match.group(1)}.{local}." + key[match.end() :]


_REFERENCE_KEYS = [
    (re.compile(r"^FirstLayer\.layers\.(\d+)\.net\.(\d+)\."), r"stem.layers.\1.\2."),
    (re.compile(r"^FirstLayer\.layers\.0\.(\d+)\."), r"stem.layers.0.0.\1."),
    (
        re.compile(r"^scale_flows\.(\d+)\.(\d+)\.layers\.(\d+)\.conv_normal\.net\."),
        r"branches.\1.blocks.\2.layers.\3.conv.net.",
    ),
    (
        re.compile(r"^scale_flows\.(\d+)\.(\d+)\.layers\.(\d+)\.conv_up\.net\."),
        r"branches.\1.blocks.\2.layers.\3.coarse_conv.net.",
    ),
    (
        re.compile(r"^scale_flows\.(\d+)\.(\d+)\.conv_last\.net\."),
        r"branches.\1.blocks.\2.fuse_last.",
    ),
    (re.compile(r"^scale_flows\.(\d+)\.(\d+)\.trans\.net\."), r"branches.\1.blocks.\2.transition."),
    (re.compile(r"^classifier\.(\d+)\.m\.(\d+)\.net\."), r"exits.\1.convs.\2."),
    (re.compile(r"^classifier\.(\d+)\.linear\."), r"exits.\1.classifier."),
]
