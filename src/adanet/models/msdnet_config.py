"""``MSDNetConfig``: every option of the original MSDNet, validated, with the published presets."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

from typing_extensions import Self

from .._validation import require_choice, require_fraction, require_int, require_int_tuple
from ..reference_args import REFERENCE_DATASETS, parse_dash_list, parse_reference_args
from ._config_io import ConfigIO

__all__ = ["REFERENCE_DEFAULTS", "REFERENCE_OPTION_NAMES", "LayerPlan", "MSDNetConfig"]

StepMode = Literal["even", "lin_grow"]
Prune = Literal["min", "max"]
Variant = Literal["cifar", "imagenet"]

#: The original's option names (args.txt, main.py flags) and the config fields they fill.
REFERENCE_OPTION_NAMES = {
    "nBlocks": "num_blocks",
    "base": "base",
    "step": "step",
    "stepmode": "step_mode",
    "nChannels": "num_channels",
    "growthRate": "growth_rate",
    "grFactor": "growth_factors",
    "bnFactor": "bottleneck_factors",
    "bottleneck": "bottleneck",
    "prune": "prune",
    "reduction": "reduction",
}

#: The original ``args.py`` defaults, used for options an args text leaves out (a real
#: args.txt holds them all). ``stepmode`` defaults to None there, which its model treats as
#: "lin_grow" (it only tests ``== 'even'``).
REFERENCE_DEFAULTS: dict[str, Any] = {
    "nBlocks": 1,
    "base": 4,
    "step": 1,
    "stepmode": None,
    "nChannels": 32,
    "growthRate": 6,
    "grFactor": "1-2-4",
    "bnFactor": "1-2-4",
    "bottleneck": True,
    "prune": "max",
    "reduction": 0.5,
}


class LayerPlan(NamedTuple):
    """Where one multi-scale dense layer sits and what it does (see
    :meth:`MSDNetConfig.layer_plan`).

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
class MSDNetConfig(ConfigIO):
    """The architecture of an MSDNet (Huang et al., "Multi-Scale Dense Networks for Resource
    Efficient Image Classification", ICLR 2018).

    Field names are pythonic spellings of the original ``args.py`` options (listed with each
    field). Scales are numbered as in the original: scale 0 is the finest, and the exits see
    the coarsest scale only.

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
        variant: ``"cifar"`` (3×3 stem, 128-wide heads) or ``"imagenet"`` (7×7/2 stem with
            max-pool, heads as wide as their input), as the original's ``--data``.
        num_classes: Classes of every exit.
        in_channels: Channels of the input images (always 3 in the original).
        memory_efficient: In training, dense layers recompute their bottleneck activations in
            backward instead of storing them (as torchvision's memory-efficient DenseNet):
            much less activation memory for about a third more compute; same outputs and
            gradients, same checkpoints.
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
    variant: Variant = "cifar"
    num_classes: int = 10
    in_channels: int = 3
    memory_efficient: bool = False

    _network: ClassVar[str] = "MSDNet"

    @classmethod
    def _preset_table(cls) -> dict[str, dict[str, Any]]:
        return _presets()

    def __post_init__(self) -> None:
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
        if not isinstance(self.bottleneck, bool):
            raise TypeError(f"bottleneck must be a bool, got {self.bottleneck!r}")
        require_choice("prune", self.prune, ("min", "max"))
        require_fraction(
            "reduction", self.reduction, low=0.0, high=1.0, low_inclusive=True, high_inclusive=True
        )
        require_choice("variant", self.variant, ("cifar", "imagenet"))
        require_int("num_classes", self.num_classes, 1)
        require_int("in_channels", self.in_channels, 1)
        if not isinstance(self.memory_efficient, bool):
            raise TypeError(f"memory_efficient must be a bool, got {self.memory_efficient!r}")
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
        for plan in self.layer_plan():
            if plan.transition and plan.out_channels < 1:
                width = plan.in_channels + self.growth_rate
                raise ValueError(
                    f"reduction={self.reduction} leaves floor({self.reduction} * {width}) = 0 "
                    f"channels after the transition in block {plan.block}; use reduction >= "
                    f"{1 / width:.3g} or 0 (no transitions)"
                )

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

    @property
    def default_image_size(self) -> int:
        """The image size the original trains this variant at (32 or 224)."""
        return 32 if self.variant == "cifar" else 224

    def layer_plan(self) -> tuple[LayerPlan, ...]:
        """Every dense layer in order: its block, scales and widths, as the original builds
        them."""
        total = self.num_layers
        scales = self.num_scales
        interval = math.ceil(total / scales)
        # The original builds a transition when the width is reduced *and* the rule holds;
        # with reduction 0 it builds none.
        min_transitions = {math.floor(total / 3), math.floor(2 * total / 3)}
        plans: list[LayerPlan] = []
        width = self.num_channels
        layer = 0  # 1-based index of the current layer, as the original counts
        for block, count in enumerate(self.layers_per_block):
            for _ in range(count):
                layer += 1
                if self.prune == "min":
                    in_scales = min(scales, total - layer + 2)
                    out_scales = min(scales, total - layer + 1)
                    transition = layer in min_transitions
                else:
                    in_scales = scales - max(0, layer - 2) // interval
                    out_scales = scales - (layer - 1) // interval
                    transition = in_scales > out_scales
                transition = transition and self.reduction > 0
                grown = width + self.growth_rate
                out = math.floor(self.reduction * grown) if transition else grown
                plans.append(LayerPlan(block, in_scales, out_scales, width, transition, out))
                width = out
        return tuple(plans)

    # ------------------------------------------------------------------------ conversions

    @classmethod
    def from_reference_args(cls, path_or_text: str | os.PathLike[str]) -> Self:
        """Read the ``args.txt`` that the original MSDNet ``main.py`` writes.

        Options the text leaves out take the original ``args.py`` defaults.

        Args:
            path_or_text: Path of the file, or its one ``Namespace(...)`` line.

        Raises:
            ValueError: When the args are not an MSDNet's, name an unknown dataset, or hold
                an invalid option.
        """
        args = parse_reference_args(path_or_text)
        arch = args.get("arch", "msdnet")
        if str(arch).lower() != "msdnet":
            raise ValueError(
                f"these reference args are for arch={arch!r}, not msdnet"
                + (" (use RANetConfig.from_reference_args)" if str(arch).lower() == "ranet" else "")
            )
        data = args.get("data", "cifar10")
        if data not in REFERENCE_DATASETS:
            raise ValueError(
                f"unknown dataset data={data!r} in the reference args; the original MSDNet "
                f"supports {sorted(REFERENCE_DATASETS)}"
            )
        variant, num_classes = REFERENCE_DATASETS[data]
        values: dict[str, Any] = {"variant": variant, "num_classes": num_classes}
        for reference_name, field_name in REFERENCE_OPTION_NAMES.items():
            value = args.get(reference_name, REFERENCE_DEFAULTS[reference_name])
            if reference_name in ("grFactor", "bnFactor"):
                value = parse_dash_list(reference_name, value)
            elif reference_name == "stepmode" and value is None:
                value = "lin_grow"  # the original grows linearly unless told "even"
            values[field_name] = value
        # The original reads only the first nScales bottleneck factors; extra ones are unused.
        factors = values["bottleneck_factors"]
        if isinstance(factors, tuple) and len(factors) > len(values["growth_factors"]):
            values["bottleneck_factors"] = factors[: len(values["growth_factors"])]
        # nScales is not read: the original sets it to len(grFactor) before building.
        scales = args.get("nScales")
        if scales is not None and scales != len(values["growth_factors"]):
            raise ValueError(
                f"nScales={scales!r} disagrees with grFactor={values['growth_factors']!r}; the "
                "original sets nScales to the number of grFactor entries"
            )
        return cls(**values)


def _presets() -> dict[str, dict[str, Any]]:
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
        "cifar10_anytime": {**anytime, "num_classes": 10},
        "cifar100_anytime": {**anytime, "num_classes": 100},
        "cifar10_budgeted": {**budgeted, "num_classes": 10},
        "cifar100_budgeted": {**budgeted, "num_classes": 100},
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
