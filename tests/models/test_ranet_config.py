"""RANetConfig: validation, derived values, JSON round trip, presets, plan (the original's
args.txt: tests/compat/test_ranet.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adanet import RANetConfig


@pytest.mark.parametrize(
    ("field", "value", "error", "pattern"),
    [
        ("num_blocks", 0, ValueError, "num_blocks must be an int >= 1, got 0"),
        ("num_blocks", 2.0, TypeError, "num_blocks"),
        ("num_channels", -4, ValueError, "num_channels"),
        ("growth_rate", 0, ValueError, "growth_rate"),
        ("step", 0, ValueError, "step must be"),
        ("block_step", -1, ValueError, "block_step"),
        ("num_classes", 0, ValueError, "num_classes"),
        ("in_channels", True, TypeError, "in_channels"),
        ("scale_list", (2, 1, 3), ValueError, "non-decreasing"),
        ("scale_list", (1, 0, 2), ValueError, "scale_list must hold ints >= 1"),
        ("scale_list", (), TypeError, "scale_list"),
        ("growth_factors", (4, 2), ValueError, r"one entry per scale \(3"),
        ("growth_factors", (4, 0, 1), ValueError, "growth_factors must hold ints >= 1"),
        ("bottleneck_factors", (4, 2, 1, 1), ValueError, "bottleneck_factors must have one entry"),
        ("bottleneck_factors", [4, 2, 1], TypeError, "tuple"),
        ("compress_factor", 0.0, ValueError, r"compress_factor must be a number in \(0.0, 1.0\)"),
        ("compress_factor", 1.0, ValueError, "compress_factor"),
        ("compress_factor", 0.05, ValueError, "compress_factor=0.05 gives scale"),
        ("compress_factor", float("nan"), ValueError, "compress_factor"),
        ("reduction", 0.0, ValueError, "reduction"),
        ("reduction", 1.5, ValueError, "reduction"),
        ("step_mode", "log", ValueError, "step_mode must be one of 'even', 'lg', got 'log'"),
        ("variant", "mnist", ValueError, "variant must be one of"),
        ("bn_after", 1, TypeError, "bn_after"),
    ],
)
def test_validation(field: str, value: Any, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        RANetConfig(**{field: value})


def test_derived_values() -> None:
    config = RANetConfig.preset("cifar10")
    assert config.num_scales == 4
    assert config.blocks_per_scale == (2, 4, 6, 8)
    assert config.num_exits == 8
    lg = RANetConfig(step=2, step_mode="lg")
    assert list(lg.layers_per_block) == [2, 4, 6, 8, 10, 12]  # one per block of the finest scale
    assert lg.layers_per_block[3] == 8


@pytest.mark.parametrize("name", RANetConfig.preset_names())
def test_json_round_trip(name: str) -> None:
    config = RANetConfig.preset(name)
    assert RANetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown RANetConfig fields \['nBlocks'\]"):
        RANetConfig.from_dict({"nBlocks": 2})


def test_presets() -> None:
    assert set(RANetConfig.preset_names()) >= {"cifar10", "cifar100", "imagenet"}
    imagenet = RANetConfig.preset("imagenet")
    assert (imagenet.num_channels, imagenet.step, imagenet.growth_rate) == (64, 8, 16)
    assert imagenet.scale_list == (1, 2, 3, 4) and imagenet.growth_factors == (4, 2, 2, 1)
    with pytest.raises(ValueError, match="unknown RANet preset 'cifar'; known presets"):
        RANetConfig.preset("cifar")


def test_a_reduction_that_keeps_no_channel_is_a_value_error_not_a_crash() -> None:
    # Used to build a conv with 0 outputs and die in weight init with ZeroDivisionError.
    with pytest.raises(ValueError, match=r"reduction=0\.01 leaves floor\(0\.01 \* \d+\) = 0"):
        RANetConfig(reduction=0.01)
    assert RANetConfig(reduction=0.1).plan().branches  # enough channels: fine


def test_plan_describes_what_the_model_builds() -> None:
    from adanet import RANet

    config = RANetConfig.preset("cifar10")
    plan = config.plan()
    model = RANet(config)
    assert [e.in_channels for e in plan.exits] == model.feature_info.channels()
    assert [len(blocks) for blocks in plan.branches] == list(config.blocks_per_scale)
    for blocks, branch in zip(plan.branches, model.branches, strict=True):
        assert [b.out_channels for b in blocks] == [block.out_channels for block in branch.blocks]
