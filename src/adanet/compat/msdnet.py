"""The original MSDNet's formats: its ``args.txt`` options and its checkpoints' parameter names."""

from __future__ import annotations

import os
import re
from typing import Any

from adanet.compat.args import parse_dash_list, read_options
from adanet.compat.ranet import NESTED_BOTTLENECK
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig

__all__ = [
    "REFERENCE_DEFAULTS",
    "REFERENCE_OPTION_NAMES",
    "read_msdnet_config",
    "translate_msdnet_key",
]

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


def read_msdnet_config(path_or_text: str | os.PathLike[str]) -> MSDNetConfig:
    """Build the :class:`~adanet.MSDNetConfig` of an original run's ``args.txt``.

    Options the text leaves out take the original ``args.py`` defaults.

    Raises:
        ValueError: Not an MSDNet's args, an unknown dataset, or an invalid option.
    """
    args, variant, num_classes = read_options(path_or_text, arch="msdnet")
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
    return MSDNetConfig(**values)


_STEM_IMAGENET = re.compile(r"^blocks\.0\.0\.layers\.0\.(\d+)\.(.+)$")
_STEM = re.compile(r"^blocks\.0\.0\.layers\.(\d+)\.net\.(\d+)\.(.+)$")
_BLOCK = re.compile(
    r"^blocks\.(\d+)\.(\d+)\.((?:layers\.\d+\.conv_(?:normal|down)|m\.\d+)\.net\..+)$"
)
_UNIT = re.compile(r"^layers\.(\d+)\.(conv_normal|conv_down)\.net\.(\d+)\.(.+)$")
_TRANSITION = re.compile(r"^m\.(\d+)\.net\.(\d+)\.(.+)$")
_HEAD_CONV = re.compile(r"^classifier\.(\d+)\.m\.(\d+)\.net\.(\d+\..+)$")
_HEAD_LINEAR = re.compile(r"^classifier\.(\d+)\.linear\.(.+)$")


def translate_msdnet_key(model: MSDNet, key: str) -> str:
    """Map a parameter name of the original MSDNet (without ``module.``) to ``model``'s.

    Names that are not the original's are returned unchanged.
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
        return f"blocks.{block}.{local}.{_translate_layer(model, rest)}"
    match = _HEAD_CONV.match(key)
    if match:
        exit_index, conv, tail = match.groups()
        return f"exits.{exit_index}.convs.{conv}.{tail}"
    match = _HEAD_LINEAR.match(key)
    if match:
        return f"exits.{match.group(1)}.classifier.{match.group(2)}"
    return key


def _translate_layer(model: MSDNet, rest: str) -> str:
    match = _UNIT.match(rest)
    if match:
        unit, kind, index, tail = match.groups()
        # The original's ConvBN is one flat Sequential (conv, bn, relu[, conv, bn, relu]);
        # with a bottleneck ours nests two conv-norm-act blocks.
        nested = model.config.bottleneck
        local = NESTED_BOTTLENECK.get(int(index), f"x{index}") if nested else index
        name = "conv" if kind == "conv_normal" else "down"
        return f"units.{unit}.{name}.{local}.{tail}"
    match = _TRANSITION.match(rest)
    if match:
        return f"convs.{match.group(1)}.{match.group(2)}.{match.group(3)}"
    return rest
