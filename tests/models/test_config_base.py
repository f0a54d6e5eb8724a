"""Tests of ``adanet.models.config_base``: what ``NetworkConfig`` gives every architecture
config, exercised through ``RANetConfig`` and ``MSDNetConfig`` — the dict and JSON round
trips (tuples as lists, every field kept), ``replace`` that validates like a new config,
named presets and their sorted names, unknown field names refused with a message naming
them and the allowed ones, the shared keyword-only fields, and ``cifar_presets``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from adanet import MSDNetConfig, RANetConfig
from adanet.models.config_base import NetworkConfig, cifar_presets

SHARED_FIELDS = {"variant", "num_classes", "in_channels", "memory_efficient", "norm", "act"}

TINY_RANET = RANetConfig(num_blocks=1, block_step=1, step=1)
TINY_MSDNET = MSDNetConfig(num_blocks=2, base=1, step=1)


def _non_default_ranet() -> RANetConfig:
    return RANetConfig(
        num_blocks=1,
        block_step=1,
        step=1,
        scale_list=(1, 2),
        growth_factors=(2, 1),
        bottleneck_factors=(2, 1),
        compress_factor=0.5,
        variant="imagenet",
        num_classes=5,
        in_channels=1,
        memory_efficient=True,
        norm="group:2",
        act="silu",
    )


# ------------------------------------------------------------------------------- to_dict


def test_to_dict_holds_every_field_with_tuples_as_lists() -> None:
    config = _non_default_ranet()
    data = config.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(RANetConfig)}
    assert set(data) >= SHARED_FIELDS
    assert data["scale_list"] == [1, 2] and type(data["scale_list"]) is list
    assert data["growth_factors"] == [2, 1] and data["bottleneck_factors"] == [2, 1]
    assert data["variant"] == "imagenet" and data["num_classes"] == 5
    assert data["in_channels"] == 1 and data["memory_efficient"] is True
    assert (data["norm"], data["act"]) == ("group:2", "silu")
    assert data["compress_factor"] == 0.5 and data["num_blocks"] == 1


def test_to_dict_refuses_a_callable_activation_and_names_it() -> None:
    config = TINY_RANET.replace(act=lambda: None)
    with pytest.raises(TypeError, match=r"act=.* is a callable.*use a named act"):
        config.to_dict()


# ----------------------------------------------------------------------------- from_dict


@pytest.mark.parametrize("config", [_non_default_ranet(), TINY_RANET, TINY_MSDNET])
def test_dict_round_trip_gives_an_equal_config(config: NetworkConfig) -> None:
    restored = type(config).from_dict(config.to_dict())
    assert restored == config and type(restored) is type(config)
    assert hash(restored) == hash(config)


def test_from_dict_turns_lists_back_into_tuples() -> None:
    config = MSDNetConfig.from_dict({"growth_factors": [1, 2], "bottleneck_factors": [1, 2]})
    assert config.growth_factors == (1, 2) and config.bottleneck_factors == (1, 2)


def test_from_dict_takes_the_defaults_for_missing_fields() -> None:
    config = RANetConfig.from_dict({"num_classes": 3})
    assert config == RANetConfig(num_classes=3)
    assert RANetConfig.from_dict({}) == RANetConfig()


def test_from_dict_names_every_unknown_key_and_the_allowed_ones() -> None:
    words = r"unknown MSDNetConfig fields \['depth', 'nBlocks'\]"
    with pytest.raises(ValueError, match=words) as info:
        MSDNetConfig.from_dict({"nBlocks": 3, "depth": 2, "num_blocks": 3})
    allowed = str(info.value).split("allowed: ")[1]
    assert "'num_blocks'" in allowed and "'variant'" in allowed and "'prune'" in allowed


def test_from_dict_refuses_fields_of_the_other_network() -> None:
    with pytest.raises(ValueError, match=r"unknown RANetConfig fields \['prune'\]"):
        RANetConfig.from_dict({"prune": "max"})


def test_from_dict_validates_the_values() -> None:
    with pytest.raises(ValueError, match="num_blocks"):
        RANetConfig.from_dict({"num_blocks": 0})
    with pytest.raises(ValueError, match="variant must be one of"):
        MSDNetConfig.from_dict({"variant": "svhn"})


@pytest.mark.parametrize("data", [[("num_blocks", 2)], "num_blocks=2", None])
def test_from_dict_refuses_what_is_not_a_mapping(data: Any) -> None:
    with pytest.raises(TypeError, match="expected a dict of RANetConfig fields, got"):
        RANetConfig.from_dict(data)


# ---------------------------------------------------------------------------------- JSON


def test_json_round_trip_gives_an_equal_config() -> None:
    config = _non_default_ranet()
    text = config.to_json()
    assert json.loads(text) == config.to_dict()
    assert RANetConfig.from_json(text) == config


def test_to_json_sorts_its_keys() -> None:
    keys = list(json.loads(TINY_MSDNET.to_json()))
    assert keys == sorted(keys)
    assert TINY_MSDNET.to_json() == TINY_MSDNET.replace().to_json()


@pytest.mark.parametrize("text", ["{num_blocks: 2}", "", "[1, 2", None])
def test_from_json_refuses_text_that_is_not_json(text: Any) -> None:
    with pytest.raises(ValueError, match="not a JSON MSDNetConfig"):
        MSDNetConfig.from_json(text)


@pytest.mark.parametrize("text", ["[1, 2]", "3", '"RANet"', "null"])
def test_from_json_refuses_json_that_is_not_an_object(text: str) -> None:
    with pytest.raises(ValueError, match="a JSON RANetConfig is an object"):
        RANetConfig.from_json(text)


def test_from_json_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown RANetConfig fields \['nChannels'\]"):
        RANetConfig.from_json('{"nChannels": 16}')


# ------------------------------------------------------------------------------- replace


def test_replace_changes_only_the_named_fields_and_leaves_the_original() -> None:
    changed = TINY_RANET.replace(num_classes=4, act="gelu")
    assert type(changed) is RANetConfig
    assert (changed.num_classes, changed.act) == (4, "gelu")
    assert (TINY_RANET.num_classes, TINY_RANET.act) == (10, "relu")
    assert changed.replace(num_classes=10, act="relu") == TINY_RANET


def test_replace_without_changes_gives_an_equal_config() -> None:
    assert TINY_MSDNET.replace() == TINY_MSDNET


def test_replace_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown RANetConfig fields \['blocks'\]; allowed"):
        TINY_RANET.replace(blocks=3)


@pytest.mark.parametrize(
    ("config", "changes", "error", "words"),
    [
        (TINY_RANET, {"num_blocks": 0}, ValueError, "num_blocks"),
        (TINY_RANET, {"num_classes": 2.5}, TypeError, "num_classes"),
        (TINY_RANET, {"memory_efficient": 1}, TypeError, "memory_efficient"),
        # Checks across fields run again: the factors must still have one entry per scale.
        (TINY_RANET, {"scale_list": (1, 2)}, ValueError, "growth_factors"),
        (TINY_MSDNET, {"growth_factors": (1, 2)}, ValueError, "bottleneck_factors"),
        (TINY_MSDNET, {"variant": "tiny"}, ValueError, "variant"),
    ],
)
def test_replace_validates_like_a_new_config(
    config: NetworkConfig, changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        config.replace(**changes)


# ------------------------------------------------------------------------ shared fields


def test_the_shared_fields_are_keyword_only() -> None:
    shared = [f for f in dataclasses.fields(RANetConfig) if f.name in SHARED_FIELDS]
    assert {f.name for f in shared} == SHARED_FIELDS
    assert all(f.kw_only for f in shared)
    with pytest.raises(TypeError):
        NetworkConfig("imagenet")  # type: ignore[call-arg]


def test_the_base_config_validates_the_shared_fields_but_has_no_plan() -> None:
    base = NetworkConfig(num_classes=3)
    assert base.default_image_size == 32
    assert NetworkConfig(variant="imagenet").default_image_size == 224
    with pytest.raises(NotImplementedError):
        base.plan()
    with pytest.raises(ValueError, match="in_channels"):
        NetworkConfig(in_channels=0)


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY_RANET.num_classes = 3  # type: ignore[misc]


# ------------------------------------------------------------------------------- presets


@pytest.mark.parametrize("config_class", [RANetConfig, MSDNetConfig])
def test_preset_names_are_sorted_and_each_builds(config_class: type[NetworkConfig]) -> None:
    names = config_class.preset_names()
    assert isinstance(names, tuple) and list(names) == sorted(names) and names
    for name in names:
        assert type(config_class.preset(name)) is config_class


def test_a_preset_holds_its_values_over_the_defaults() -> None:
    # The RANet "cifar10_budgeted" preset sets step 2 in "lg" mode and 3 scales, and keeps
    # num_blocks, growth_rate, block_step at their defaults.
    budgeted = RANetConfig.preset("cifar10_budgeted")
    assert (budgeted.step, budgeted.step_mode, budgeted.scale_list) == (2, "lg", (1, 2, 3))
    defaults = RANetConfig()
    assert (budgeted.num_blocks, budgeted.growth_rate, budgeted.block_step) == (
        defaults.num_blocks,
        defaults.growth_rate,
        defaults.block_step,
    )


def test_cifar10_and_cifar100_presets_differ_only_in_the_classes() -> None:
    pairs = [("cifar10", "cifar100"), ("cifar10_budgeted", "cifar100_budgeted")]
    for ten, hundred in pairs:
        a, b = RANetConfig.preset(ten), RANetConfig.preset(hundred)
        assert (a.num_classes, b.num_classes) == (10, 100)
        assert b.replace(num_classes=10) == a
    anytime10 = MSDNetConfig.preset("cifar10_anytime")
    anytime100 = MSDNetConfig.preset("cifar100_anytime")
    assert anytime100.replace(num_classes=10) == anytime10 and anytime100.num_classes == 100


@pytest.mark.parametrize("name", ["cifar", "CIFAR10", "", 10, None])
def test_an_unknown_preset_is_refused_with_the_known_names(name: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown RANet preset .*known presets: \[") as info:
        RANetConfig.preset(name)
    assert "'cifar10'" in str(info.value) and "'imagenet'" in str(info.value)
    with pytest.raises(ValueError, match=r"unknown MSDNet preset .*'cifar10_anytime'"):
        MSDNetConfig.preset(name)


def test_the_base_config_has_no_presets() -> None:
    assert NetworkConfig.preset_names() == ()
    with pytest.raises(ValueError, match=r"unknown network preset 'x'; known presets: \[\]"):
        NetworkConfig.preset("x")


# -------------------------------------------------------------------------- cifar_presets


def test_cifar_presets_make_a_10_and_a_100_class_entry() -> None:
    values = {"num_blocks": 3, "num_classes": 7}
    presets = cifar_presets("_small", values)
    assert presets == {
        "cifar10_small": {"num_blocks": 3, "num_classes": 10},
        "cifar100_small": {"num_blocks": 3, "num_classes": 100},
    }
    assert values == {"num_blocks": 3, "num_classes": 7}  # the input is not changed
    assert presets["cifar10_small"] is not presets["cifar100_small"]


def test_cifar_presets_with_an_empty_suffix() -> None:
    assert set(cifar_presets("", {})) == {"cifar10", "cifar100"}
    assert cifar_presets("", {})["cifar100"] == {"num_classes": 100}
