"""MSDNetConfig: validation, JSON round trip, presets, layer plan (the original's args.txt:
tests/compat/test_msdnet.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from adanet.models.msdnet_config import MSDNetConfig

# ------------------------------------------------------------------------------ validation

BAD_VALUES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"num_blocks": 0}, ValueError, "num_blocks"),
    ({"num_blocks": 2.0}, TypeError, "num_blocks"),
    ({"num_blocks": True}, TypeError, "num_blocks"),
    ({"base": 0}, ValueError, "base"),
    ({"step": 0, "step_mode": "even"}, ValueError, "step"),
    ({"step": -1, "step_mode": "lin_grow"}, ValueError, "step"),
    ({"step_mode": "lg"}, ValueError, "step_mode"),
    ({"num_channels": 0}, ValueError, "num_channels"),
    ({"growth_rate": 0}, ValueError, "growth_rate"),
    ({"growth_rate": "6"}, TypeError, "growth_rate"),
    ({"growth_factors": ()}, TypeError, "growth_factors"),
    ({"growth_factors": [1, 2, 4]}, TypeError, "growth_factors"),
    ({"growth_factors": (1, 0, 4)}, ValueError, "growth_factors"),
    ({"bottleneck_factors": (1, 2)}, ValueError, "bottleneck_factors"),
    ({"bottleneck_factors": (1, 2, 0)}, ValueError, "bottleneck_factors"),
    ({"bottleneck": 1}, TypeError, "bottleneck"),
    ({"prune": "mid"}, ValueError, "prune"),
    ({"reduction": -0.5}, ValueError, "reduction"),
    ({"reduction": 1.5}, ValueError, "reduction"),
    ({"reduction": float("nan")}, ValueError, "reduction"),
    ({"reduction": "0.5"}, TypeError, "reduction"),
    ({"variant": "ImageNet"}, ValueError, "variant"),
    ({"num_classes": 0}, ValueError, "num_classes"),
    ({"in_channels": 0}, ValueError, "in_channels"),
    # A scale fed by a finer one splits its growth in two halves.
    ({"growth_rate": 5, "growth_factors": (1, 1, 1)}, ValueError, "must be even"),
    # A transition that would keep no channel.
    ({"reduction": 0.01}, ValueError, "reduction=0.01"),
]


@pytest.mark.parametrize(("changes", "error", "words"), BAD_VALUES)
def test_invalid_values_are_refused_with_the_field_named(
    changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words) as info:
        MSDNetConfig(**changes)
    # The message names the field and the value it got.
    field, value = next(iter(changes.items()))
    assert field in str(info.value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


GOOD_VALUES: list[dict[str, Any]] = [
    {},
    {"step": 0, "step_mode": "lin_grow"},  # every lin_grow block still has one layer
    {"reduction": 0.0},  # no transitions at all
    {"reduction": 1},
    {"prune": "min"},
    {"bottleneck": False},
    {"growth_factors": (3,), "bottleneck_factors": (1,), "growth_rate": 3},  # one scale
    {"num_blocks": 1, "base": 1},  # fewer layers than scales
]


@pytest.mark.parametrize("changes", GOOD_VALUES)
def test_valid_values_are_accepted(changes: dict[str, Any]) -> None:
    config = MSDNetConfig(**changes)
    assert len(config.plan().layers) == config.num_layers


def test_config_is_frozen() -> None:
    config = MSDNetConfig()
    with pytest.raises(AttributeError):
        config.num_blocks = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- derived values


@pytest.mark.parametrize(
    ("changes", "layers"),
    [
        ({"num_blocks": 7, "base": 4, "step": 2, "step_mode": "even"}, (4, 2, 2, 2, 2, 2, 2)),
        ({"num_blocks": 5, "base": 1, "step": 1, "step_mode": "lin_grow"}, (1, 2, 3, 4, 5)),
        ({"num_blocks": 3, "base": 2, "step": 2, "step_mode": "lin_grow"}, (2, 3, 5)),
    ],
)
def test_layers_per_block_follow_the_step_mode(
    changes: dict[str, Any], layers: tuple[int, ...]
) -> None:
    config = MSDNetConfig(**changes)
    assert config.layers_per_block == layers
    assert config.num_layers == sum(layers)
    assert config.num_exits == len(layers)


def test_prune_max_drops_one_scale_per_equal_part_with_a_transition() -> None:
    plan = MSDNetConfig.preset("cifar100_anytime").plan().layers  # 16 layers, 3 scales
    interval = math.ceil(16 / 3)
    assert [p.out_scales for p in plan] == [3 - (c - 1) // interval for c in range(1, 17)]
    transitions = [i + 1 for i, p in enumerate(plan) if p.transition]
    assert transitions == [interval + 1, 2 * interval + 1]
    assert all(p.in_scales - p.out_scales == int(p.transition) for p in plan)
    # Widths: growth after every layer, halved at each transition.
    width = 16
    for p in plan:
        assert p.in_channels == width
        width = (width + 6) // 2 if p.transition else width + 6
        assert p.out_channels == width


def test_prune_min_keeps_every_scale_until_the_last_layers() -> None:
    config = MSDNetConfig(num_blocks=3, base=3, step=3, prune="min")  # 9 layers
    plan = config.plan().layers
    assert [p.out_scales for p in plan] == [3, 3, 3, 3, 3, 3, 3, 2, 1]
    assert [i + 1 for i, p in enumerate(plan) if p.transition] == [3, 6]


def test_reduction_zero_builds_no_transition() -> None:
    plan = MSDNetConfig(reduction=0.0).plan().layers
    assert not any(p.transition for p in plan)
    assert [p.out_scales for p in plan][-1] == 1


# --------------------------------------------------------------------------- JSON, presets


@pytest.mark.parametrize("name", MSDNetConfig.preset_names())
def test_json_round_trip(name: str) -> None:
    config = MSDNetConfig.preset(name)
    data = json.loads(json.dumps(config.to_dict()))
    assert MSDNetConfig.from_dict(data) == config


def test_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="nBlocks"):
        MSDNetConfig.from_dict({"nBlocks": 3})


def test_preset_names() -> None:
    assert MSDNetConfig.preset_names() == (
        "cifar100_anytime",
        "cifar100_budgeted",
        "cifar10_anytime",
        "cifar10_budgeted",
        "imagenet",
    )
    with pytest.raises(ValueError, match="known presets"):
        MSDNetConfig.preset("msdnet-huge")


def test_preset_values() -> None:
    anytime = MSDNetConfig.preset("cifar100_anytime")
    assert (anytime.num_blocks, anytime.step, anytime.base, anytime.step_mode) == (
        7,
        2,
        4,
        "even",
    )
    assert (anytime.num_channels, anytime.growth_rate) == (16, 6)
    assert anytime.growth_factors == anytime.bottleneck_factors == (1, 2, 4)
    assert (anytime.prune, anytime.bottleneck, anytime.reduction) == ("max", True, 0.5)
    budgeted = MSDNetConfig.preset("cifar10_budgeted")
    assert (budgeted.num_blocks, budgeted.step, budgeted.base, budgeted.step_mode) == (
        5,
        1,
        1,
        "lin_grow",
    )
    assert budgeted.num_classes == 10
    imagenet = MSDNetConfig.preset("imagenet")
    assert imagenet.growth_factors == imagenet.bottleneck_factors == (1, 2, 4, 4)
    assert (imagenet.num_blocks, imagenet.step, imagenet.base) == (5, 4, 4)
    assert (imagenet.num_channels, imagenet.growth_rate, imagenet.num_classes) == (32, 16, 1000)
    assert imagenet.variant == "imagenet"
    assert imagenet.default_image_size == 224
    assert anytime.default_image_size == 32


def test_prune_min_with_too_few_layers_for_its_scales_is_refused_when_configured() -> None:
    with pytest.raises(ValueError, match=r"prune='min' with 2 dense layers cannot start from 4"):
        MSDNetConfig(
            num_blocks=1,
            base=2,
            prune="min",
            growth_factors=(1, 2, 4, 4),
            bottleneck_factors=(1, 2, 4, 4),
        )


def test_a_reduction_that_keeps_no_channel_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"reduction=0\.01 leaves floor"):
        MSDNetConfig(num_channels=4, growth_rate=2, reduction=0.01)
