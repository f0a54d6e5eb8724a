"""``MSDNetConfig``: every option of the original MSDNet, validated, with the published presets."""

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
    LayerPlan,
    MSDNetPlan,
    stem_downsampling,
)

__all__ = ["LayerPlan", "MSDNetConfig"]

StepMode = Literal["even", "lin_grow"]
Prune = Literal["min", "max"]


def _preset_values() -> dict[str, dict[str, Any]]:
    # The original README's CIFAR commands: anytime prediction (7 blocks) and budgeted batch
    # classification (5 blocks growing linearly); the other options are args.py defaults.
    cifar = {
        "num_channels": 16,
        "growth_rate": 6,
        "growth_factors": (1, 2, 4),
        "bottleneck_factors": (1, 2, 4),
        "bottleneck": True,
        "prune": "max",
        "reduction": 0.5,
        "variant": "cifar",
    }
    anytime = {**cifar, "num_blocks": 7, "step": 2, "base": 4, "step_mode": "even"}
    budgeted = {**cifar, "num_blocks": 5, "step": 1, "base": 1, "step_mode": "lin_grow"}
    return {
        **cifar_presets("_anytime", anytime),
        **cifar_presets("_budgeted", budgeted),
        # The README's ImageNet model (step 4), the one of the published pretrained weights.
        "imagenet": {
            "num_blocks": 5,
            "step": 4,
            "base": 4,
            "step_mode": "even",
            "num_channels": 32,
            "growth_rate": 16,
            "growth_factors": (1, 2, 4, 4),
            "bottleneck_factors": (1, 2, 4, 4),
            "bottleneck": True,
            "prune": "max",
            "reduction": 0.5,
            "variant": "imagenet",
            "num_classes": 1000,
        },
    }


@dataclass(frozen=True)
class MSDNetConfig(NetworkConfig):
    """The architecture of an MSDNet (Huang et al., "Multi-Scale Dense Networks for Resource
    Efficient Image Classification", ICLR 2018).

    Field names are pythonic spellings of the original ``args.py`` options (listed with each
    field). Scales are numbered as in the original: scale 0 is the finest, and the exits see
    the coarsest scale only.

    The fields every network has (``variant``, ``num_classes``, ``in_channels``,
    ``memory_efficient``, ``norm``, ``act``) are keyword-only and documented in
    :class:`~adanet.models.NetworkConfig`.

    Attributes:
        num_blocks: Blocks, one exit after each (``--nBlocks``).
        base: Dense layers in the first block (``--base``).
        step: Layers per later block (``--step``): ``step`` each with ``step_mode="even"``,
            ``step * b + 1`` in block ``b`` (0-based) with ``"lin_grow"``.
        step_mode: ``"even"`` or ``"lin_grow"`` (``--stepmode``).
        num_channels: Base width of the stem (``--nChannels``); scale ``s`` has ``num_channels
            * growth_factors[s]`` channels.
        growth_rate: Channels each layer adds, times ``growth_factors[s]`` (``--growthRate``).
            On a scale fed by a finer one, half come from the strided finer feature.
        growth_factors: Per-scale width multipliers, finest first (``--grFactor``); their
            number is the number of scales (the original's ``nScales``).
        bottleneck_factors: Per-scale bottleneck widths: a 1×1 conv has at most ``factor *
            its output`` channels (``--bnFactor``).
        bottleneck: Put a 1×1 conv before every 3×3 conv of the dense layers
            (``--bottleneck``).
        prune: Where the finest scales are dropped (``--prune``): ``"max"`` splits the layers
            into ``num_scales`` equal parts and drops one scale after each, with a transition;
            ``"min"`` keeps every scale until the last layers need fewer, with transitions
            after a third and two thirds of the layers.
        reduction: Width kept by a transition, ``floor(reduction * width)`` (``--reduction``);
            0 means no transitions.
    """

    num_blocks: int = 7
    base: int = 4
    step: int = 2
    step_mode: StepMode = "even"
    num_channels: int = 16
    growth_rate: int = 6
    growth_factors: tuple[int, ...] = (1, 2, 4)
    bottleneck_factors: tuple[int, ...] = (1, 2, 4)
    bottleneck: bool = True
    prune: Prune = "max"
    reduction: float = 0.5

    _network: ClassVar[str] = "MSDNet"
    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = _preset_values()

    def _validate(self) -> None:
        require_int("num_blocks", self.num_blocks, 1)
        require_int("base", self.base, 1)
        require_choice("step_mode", self.step_mode, ("even", "lin_grow"))
        # Every block needs a layer: "even" blocks have `step` layers, "lin_grow" ones
        # `step * b + 1`, which is at least 1 for any step >= 0.
        require_int("step", self.step, 1 if self.step_mode == "even" else 0)
        require_int("num_channels", self.num_channels, 1)
        require_int("growth_rate", self.growth_rate, 1)
        require_int_tuple("growth_factors", self.growth_factors, 1)
        scales = len(self.growth_factors)
        require_int_tuple(
            "bottleneck_factors", self.bottleneck_factors, 1, scales, length_of="growth_factors"
        )
        require_bool("bottleneck", self.bottleneck)
        require_choice("prune", self.prune, ("min", "max"))
        require_fraction(
            "reduction", self.reduction, low=0.0, high=1.0, low_inclusive=True, high_inclusive=True
        )
        for scale in range(1, scales):
            # Every scale but the finest is fed by the next finer one in the first layer;
            # there its growth is split in two halves (strided finer feature, own feature),
            # and an odd growth would lose a channel and break every later width.
            growth = self.growth_rate * self.growth_factors[scale]
            if growth % 2:
                raise ValueError(
                    f"growth_rate * growth_factors[{scale}] = {self.growth_rate} * "
                    f"{self.growth_factors[scale]} = {growth} must be even: scale {scale} "
                    "takes half its new channels from the finer scale and half from its own"
                )
        self.plan()  # raises where a transition would keep no channel

    # ----------------------------------------------------------------------------- derived

    @property
    def num_scales(self) -> int:
        """Number of scales (the original's ``nScales``)."""
        return len(self.growth_factors)

    @property
    def num_exits(self) -> int:
        """Number of exits: one per block."""
        return self.num_blocks

    @property
    def layers_per_block(self) -> tuple[int, ...]:
        """Dense layers in each block."""
        later = (
            self.step if self.step_mode == "even" else self.step * b + 1
            for b in range(1, self.num_blocks)
        )
        return (self.base, *later)

    @property
    def num_layers(self) -> int:
        """Dense layers in all."""
        return sum(self.layers_per_block)

    def plan(self) -> MSDNetPlan:
        """The network's layout: stem widths, every dense layer, every exit.

        Raises:
            ValueError: A transition would keep no channel (``reduction`` too small).
        """
        return _plan_msdnet(self)


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
            where = f"after the transition in block {block}"
            no_transitions = " or 0 (no transitions)"
            out = (
                floor_channels("reduction", config.reduction, grown, where, no_transitions)
                if transition
                else grown
            )
            plans.append(LayerPlan(block, in_scales, out_scales, width, transition, out))
            width = out
    return tuple(plans)


def _plan_msdnet(config: MSDNetConfig) -> MSDNetPlan:
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
