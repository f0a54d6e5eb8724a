"""``MSDNet``: Multi-Scale Dense Networks (Huang et al., ICLR 2018), built from adanet's blocks."""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from ..blocks import ExitHead, MultiScaleStem
from ..blocks.multiscale_dense_layer import MultiScaleDenseLayer, MultiScaleTransition
from ..protocol import EarlyExitNetwork
from .msdnet_config import MSDNetConfig

__all__ = ["MSDNet"]


class MSDNet(EarlyExitNetwork):
    """An MSDNet: a stack of multi-scale dense layers that keep a feature map at every scale,
    each scale fed by itself and by the next finer one, with an exit after every block that
    classifies the coarsest scale.

    The finest scales are dropped as the network deepens (``config.prune``), each drop
    followed by a 1×1 transition. ``forward(x)`` returns the list of every exit's logits in
    block order; a sample leaving at exit ``k`` only pays for the blocks up to ``k`` (see
    :func:`adanet.early_exit`). The state between exits is the list of each active scale's
    current feature map, finest first.

    Unlike the original, the heads pool adaptively, so any image of at least
    :attr:`min_input_size` pixels works, and nothing is printed while building.

    Args:
        config: The architecture.

    Attributes:
        config: The architecture.
        stem: Makes each scale's base feature (the original's ``MSDNFirstLayer``).
        blocks: Per exit, an ``nn.Sequential`` of :class:`MultiScaleDenseLayer` and
            :class:`MultiScaleTransition` modules mapping the list of scale features to the
            next one.
        exits: The exit heads.
        feature_info: Per exit, the channels (``num_chs``), downsampling (``reduction``)
            and ``module`` name of the feature map it sees, as timm's ``feature_info``.
    """

    def __init__(self, config: MSDNetConfig) -> None:
        super().__init__()
        if not isinstance(config, MSDNetConfig):
            raise TypeError(f"expected an MSDNetConfig, got {type(config).__name__}")
        self.config = config
        self.in_channels = config.in_channels
        scales = config.num_scales
        factors = config.growth_factors

        self.stem = MultiScaleStem(
            config.in_channels,
            [config.num_channels * f for f in factors],
            [True] * scales,  # every scale halves the previous one
            variant=config.variant,
        )
        coarsest_reduction = self.stem.reductions[-1]

        plans = config.layer_plan()
        blocks: list[nn.Sequential] = []
        exits: list[ExitHead] = []
        feature_info: list[dict[str, Any]] = []
        active = scales  # scales alive so far; always the coarsest ones
        width = config.num_channels
        for b in range(config.num_blocks):
            modules: list[nn.Module] = []
            for plan in (p for p in plans if p.block == b):
                if plan.in_scales != active:
                    raise AssertionError("layer plan out of step with the scales built")
                inputs = range(scales - plan.in_scales, scales)
                outputs = range(scales - plan.out_scales, scales)
                modules.append(
                    MultiScaleDenseLayer(
                        [width * factors[s] for s in inputs],
                        [config.growth_rate * factors[s] for s in outputs],
                        bottleneck_widths=[config.bottleneck_factors[s] for s in inputs],
                        bottleneck=config.bottleneck,
                        memory_efficient=config.memory_efficient,
                    )
                )
                active = plan.out_scales
                width += config.growth_rate
                if plan.transition:
                    modules.append(
                        MultiScaleTransition(
                            [width * factors[s] for s in outputs],
                            [plan.out_channels * factors[s] for s in outputs],
                        )
                    )
                    width = plan.out_channels
            blocks.append(nn.Sequential(*modules))
            channels = width * factors[-1]  # the exits see the coarsest scale only
            hidden = 128 if config.variant == "cifar" else None
            exits.append(ExitHead(channels, config.num_classes, hidden_channels=hidden))
            feature_info.append(
                {
                    "exit": b,
                    "num_chs": channels,
                    "reduction": coarsest_reduction,
                    "module": f"blocks.{b}",
                }
            )

        self.blocks = nn.ModuleList(blocks)
        self.exits = nn.ModuleList(exits)
        self.feature_info = feature_info
        # Below this size the coarsest map is smaller than 4 pixels, so the exit heads' two
        # strided convs would mostly see padding; the original only runs at 32 or 224.
        self.min_input_size = coarsest_reduction * 4
        # No weight initialisation beyond PyTorch's defaults, on purpose: the original
        # defines a He-normal initialiser but applies it only to the direct children of each
        # block and head (MSDNFirstLayer, MSDNLayer, ParallelModule, ClassifierModule), none
        # of which is a conv, norm or linear layer, so its networks train from PyTorch's
        # defaults. Keeping them keeps training runs comparable with the original's.

    @classmethod
    def from_config(cls, config: MSDNetConfig | str) -> MSDNet:
        """Build from a config or a preset name (see :meth:`MSDNetConfig.preset_names`)."""
        if isinstance(config, str):
            config = MSDNetConfig.preset(config)
        return cls(config)

    # ------------------------------------------------------------------ early-exit protocol

    def begin(self, x: Tensor) -> list[Tensor]:
        # One [N, C_s, H / r_s, W / r_s] map per scale, finest first.
        features: list[Tensor] = self.stem(x)
        return features

    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        # The coarsest maps of block `exit_index`, finest first; the finest may be dropped.
        features: list[Tensor] = self.blocks[exit_index](state)
        return features[-1], features  # [N, C, H / r, W / r] at the coarsest scale

    # ------------------------------------------------------------------ reference checkpoints

    def translate_reference_key(self, key: str) -> str:
        """Map a parameter name of the original MSDNet (without ``module.``) to this model's.

        Used by :func:`adanet.load_reference_checkpoint`. Names that are not the original's
        are returned unchanged.
        """
        match = _STEM_IMAGENET.match(key)
        if match:  # Sequential(conv, bn, relu, max-pool) → (conv-norm-act, max-pool)
            return f"stem.layers.0.0.{match.group(1)}.{match.group(2)}"
        match = _STEM.match(key)
        if match:
            return f"stem.layers.{match.group(1)}.{match.group(2)}.{match.group(3)}"
        match = _BLOCK.match(key)
        if match:
            block, index, rest = int(match.group(1)), int(match.group(2)), match.group(3)
            # The original's first block starts with the stem; ours keeps it apart.
            local = index - 1 if block == 0 else index
            return f"blocks.{block}.{local}.{self._translate_layer(rest)}"
        match = _HEAD_CONV.match(key)
        if match:
            exit_index, conv, tail = match.groups()
            return f"exits.{exit_index}.convs.{conv}.{tail}"
        match = _HEAD_LINEAR.match(key)
        if match:
            return f"exits.{match.group(1)}.classifier.{match.group(2)}"
        return key

    def _translate_layer(self, rest: str) -> str:
        match = _UNIT.match(rest)
        if match:
            unit, kind, index, tail = match.groups()
            # The original's ConvBN is one flat Sequential (conv, bn, relu[, conv, bn,
            # relu]); with a bottleneck ours nests two conv-norm-act blocks.
            if self.config.bottleneck:
                local = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1"}.get(index, f"x{index}")
            else:
                local = index
            name = "conv" if kind == "conv_normal" else "down"
            return f"units.{unit}.{name}.{local}.{tail}"
        match = _TRANSITION.match(rest)
        if match:
            return f"convs.{match.group(1)}.{match.group(2)}.{match.group(3)}"
        return rest


_STEM_IMAGENET = re.compile(r"^blocks\.0\.0\.layers\.0\.(\d+)\.(.+)$")
_STEM = re.compile(r"^blocks\.0\.0\.layers\.(\d+)\.net\.(\d+)\.(.+)$")
_BLOCK = re.compile(
    r"^blocks\.(\d+)\.(\d+)\.((?:layers\.\d+\.conv_(?:normal|down)|m\.\d+)\.net\..+)$"
)
_UNIT = re.compile(r"^layers\.(\d+)\.(conv_normal|conv_down)\.net\.(\d+)\.(.+)$")
_TRANSITION = re.compile(r"^m\.(\d+)\.net\.(\d+)\.(.+)$")
_HEAD_CONV = re.compile(r"^classifier\.(\d+)\.m\.(\d+)\.net\.(\d+\..+)$")
_HEAD_LINEAR = re.compile(r"^classifier\.(\d+)\.linear\.(.+)$")
