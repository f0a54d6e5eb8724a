"""Norm and activation specs: names, group counts that fit every width, user factories."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import adanet
from adanet.blocks.norm_act import GroupNormFactory, resolve_act, resolve_norm


def test_names_give_the_expected_layers() -> None:
    assert resolve_norm("batch") is nn.BatchNorm2d
    layer_norm = resolve_norm("layer")(6)
    assert isinstance(layer_norm, nn.GroupNorm) and layer_norm.num_groups == 1
    assert isinstance(resolve_act("relu")(inplace=True), nn.ReLU)
    assert isinstance(resolve_act("silu")(inplace=True), nn.SiLU)
    assert isinstance(resolve_act("gelu")(inplace=True), nn.GELU)  # takes no inplace itself
    assert isinstance(resolve_act("hardswish")(inplace=True), nn.Hardswish)


@pytest.mark.parametrize(("channels", "groups"), [(64, 8), (70, 7), (6, 6), (13, 1), (3, 3)])
def test_group_norm_uses_the_largest_divisor_up_to_the_count(channels: int, groups: int) -> None:
    norm = resolve_norm("group:8")(channels)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == groups
    norm(torch.randn(2, channels, 4, 4))  # builds and runs


def test_user_factories_with_and_without_inplace() -> None:
    assert resolve_norm(nn.InstanceNorm2d) is nn.InstanceNorm2d
    assert isinstance(resolve_act(nn.Tanh)(inplace=True), nn.Tanh)  # no inplace argument
    assert isinstance(resolve_act(nn.ReLU6)(inplace=True), nn.ReLU6)


@pytest.mark.parametrize(
    ("spec", "error"),
    [("group:0", ValueError), ("group", ValueError), ("bn", ValueError), (3, TypeError)],
)
def test_bad_norm_specs(spec: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="norm must be"):
        resolve_norm(spec)  # type: ignore[arg-type]


def test_bad_act_specs() -> None:
    with pytest.raises(ValueError, match="act must be one of 'relu'"):
        resolve_act("swish")
    with pytest.raises(TypeError, match="act must be"):
        resolve_act(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups"):
        GroupNormFactory(0)


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("norm", lambda channels: torch.zeros(channels)),
        ("norm", lambda channels: None),
        ("norm", int),
        ("act", lambda inplace=False: torch.relu),
        ("act", lambda: "relu"),
    ],
)
def test_callables_that_do_not_return_a_module_name_the_spec(field: str, spec: Any) -> None:
    with pytest.raises(TypeError, match=f"the {field} callable .* not an nn.Module"):
        adanet.RANet(adanet.RANetConfig(num_blocks=1, block_step=1, step=1, **{field: spec}))
