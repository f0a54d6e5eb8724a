"""The original RANet's formats: its ``args.txt`` options and its checkpoints' parameter names."""

from __future__ import annotations

import os
import re
from typing import Any

from adanet.compat.args import parse_dash_list, read_options
from adanet.models.ranet import RANet
from adanet.models.ranet_config import RANetConfig

__all__ = ["LIST_OPTIONS", "REFERENCE_OPTION_NAMES", "read_ranet_config", "translate_ranet_key"]

#: The original's option names (args.txt, main.py flags) and the config fields they fill.
REFERENCE_OPTION_NAMES = {
    "nBlocks": "num_blocks",
    "nChannels": "num_channels",
    "growthRate": "growth_rate",
    "grFactor": "growth_factors",
    "bnFactor": "bottleneck_factors",
    "block_step": "block_step",
    "scale_list": "scale_list",
    "compress_factor": "compress_factor",
    "step": "step",
    "stepmode": "step_mode",
    "reduction": "reduction",
}

#: Options the original writes as dash-separated lists (``'4-2-1'``) or lists.
LIST_OPTIONS = ("grFactor", "bnFactor", "scale_list")


def read_ranet_config(path_or_text: str | os.PathLike[str]) -> RANetConfig:
    """Build the :class:`~adanet.RANetConfig` of an original run's ``args.txt``.

    Options the text leaves out keep the config's defaults. ``--bnAfter`` is not read: the
    original always builds conv-norm-act layers (its blocks pass ``True`` where ``ConvBN``
    expects it, whatever the flag says).

    Raises:
        ValueError: Not a RANet's args, an unknown dataset, or an invalid option.
    """
    args, variant, num_classes = read_options(path_or_text, arch="RANet")
    values: dict[str, Any] = {"variant": variant, "num_classes": num_classes}
    for reference_name, field_name in REFERENCE_OPTION_NAMES.items():
        if reference_name in args:
            value = args[reference_name]
            if reference_name in LIST_OPTIONS:
                value = parse_dash_list(reference_name, value)
            values[field_name] = value
    return RANetConfig(**values)


_KEYS = [
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
_BOTTLENECK = re.compile(r"\.(conv|coarse_conv)\.net\.(\d+)\.")
# The original's bottleneck is one flat Sequential (conv, bn, relu, conv, bn, relu); ours
# nests two conv-norm-act blocks when norm comes after the conv.
NESTED_BOTTLENECK = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1"}


def translate_ranet_key(model: RANet, key: str) -> str:
    """Map a parameter name of the original RANet (without ``module.``) to ``model``'s.

    Names that are not the original's are returned unchanged.
    """
    for pattern, replacement in _KEYS:
        new, count = pattern.subn(replacement, key)
        if count:
            match = _BOTTLENECK.search(new)
            if match is None:
                return new
            index = int(match.group(2))
            local = (
                NESTED_BOTTLENECK.get(index, f"x{index}") if model.config.bn_after else str(index)
            )
            return new[: match.start()] + f".{match.group(1)}.{local}." + new[match.end() :]
    return key
