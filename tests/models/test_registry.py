"""The model factory: every preset by a unique name, overrides, pretrained weights, and
registering one's own network."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import adanet
from adanet import MSDNet, MSDNetConfig, RANet, RANetConfig
from adanet.models.registry import ModelRegistry, default_registry
from conftest import REPO

# Small enough to build in a blink; the two ImageNet presets are built once each below.
_SMALL = {"num_channels": 4, "growth_rate": 4}


def test_every_preset_of_both_networks_is_listed_under_a_unique_name() -> None:
    expected = {f"ranet_{p}" for p in RANetConfig.preset_names()}
    expected |= {f"msdnet_{p}" for p in MSDNetConfig.preset_names()}
    names = adanet.list_models()
    assert set(names) >= expected and len(names) == len(set(names))
    assert adanet.list_models("msdnet_*") == sorted(n for n in expected if n.startswith("msdnet"))
    assert "ranet_cifar10" in names and "msdnet_imagenet" in names


@pytest.mark.parametrize(
    "name", sorted(adanet.list_models("ranet_*") + adanet.list_models("msdnet_*"))
)
def test_create_model_builds_each_preset_as_its_config_says(name: str) -> None:
    network, _, preset = name.partition("_")
    config_class = RANetConfig if network == "ranet" else MSDNetConfig
    expected = config_class.preset(preset)
    overrides: dict[str, Any] = {} if "imagenet" not in preset else dict(_SMALL)
    model = adanet.create_model(name, **overrides)
    assert isinstance(model, RANet if network == "ranet" else MSDNet)
    assert model.config == expected.replace(**overrides)
    assert len(model.exits) == expected.num_exits


def test_num_classes_and_config_overrides() -> None:
    model = adanet.create_model("ranet_cifar10", num_classes=100, norm="group:4", act="silu")
    assert isinstance(model, RANet)
    assert model.config.num_classes == 100 and model.config.norm == "group:4"
    assert all(head.classifier.out_features == 100 for head in model.exits)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_bad_names_and_overrides_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'ranet'.*did you mean"):
        adanet.create_model("ranet")
    with pytest.raises(ValueError, match="unknown RANetConfig fields \\['depth'\\]"):
        adanet.create_model("ranet_cifar10", depth=3)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        adanet.create_model("ranet_cifar10", num_classes=0)
    with pytest.raises(ValueError, match=r"unknown RANetConfig fields \['pretrained'\]"):
        adanet.create_model("ranet_cifar10", pretrained="weights.pt")
    with pytest.raises(TypeError, match="pattern"):
        adanet.list_models(3)  # type: ignore[arg-type]


class _Tiny(adanet.EarlyExitNetwork):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.in_channels = 3
        self.body = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.exits = torch.nn.ModuleList(
            [
                torch.nn.Sequential(
                    torch.nn.AdaptiveAvgPool2d(1),
                    torch.nn.Flatten(),
                    torch.nn.Linear(4, num_classes),
                )
            ]
        )

    def begin(self, x: torch.Tensor) -> Any:
        return x

    def advance(self, state: Any, exit_index: int) -> tuple[torch.Tensor, Any]:
        y = self.body(state)
        return y, y


def test_register_model_is_one_decorator_and_touches_nothing_else() -> None:
    exported = list(adanet.__all__)
    adanet.models.register_model(_Tiny)
    try:

        @adanet.models.register_model(name="tiny_five")
        def tiny_five(**overrides: Any) -> _Tiny:
            return _Tiny(**{"num_classes": 5, **overrides})

        assert {"_Tiny", "tiny_five"} <= set(adanet.list_models())
        assert adanet.create_model("tiny_five")(torch.randn(2, 3, 8, 8))[0].shape == (2, 5)
        assert adanet.create_model("_Tiny", num_classes=7)(torch.randn(1, 3, 8, 8))[0].shape == (
            1,
            7,
        )
        with pytest.raises(ValueError, match="already registered"):
            adanet.models.register_model(name="_Tiny")(tiny_five)
    finally:
        default_registry.unregister("_Tiny")
        default_registry.unregister("tiny_five")
    assert adanet.__all__ == exported and "_Tiny" not in adanet.list_models()


def test_a_registry_is_an_object_of_its_own() -> None:
    registry = ModelRegistry()
    registry.register("a", _Tiny)
    assert registry.names() == ["a"] and "a" in registry and len(registry) == 1
    with pytest.raises(ValueError, match="identifiers"):
        registry.register("bad name", _Tiny)
    with pytest.raises(TypeError, match="callable"):
        registry.register("b", 3)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no model named"):
        registry.unregister("b")


def test_an_entry_point_must_return_a_network() -> None:
    adanet.models.register_model(name="not_a_network")(lambda **kw: torch.nn.Linear(2, 2))
    try:
        with pytest.raises(TypeError, match=r"not an adanet\.EarlyExitNetwork"):
            adanet.create_model("not_a_network")
    finally:
        default_registry.unregister("not_a_network")


def test_running_a_module_again_replaces_its_own_registration() -> None:
    registry = ModelRegistry()
    source = "def net(**kw):\n    return kw\n"
    first: dict[str, Any] = {"__name__": "user_module"}
    second: dict[str, Any] = {"__name__": "user_module"}
    exec(source, first)
    exec(source, second)
    registry.register("net", first["net"])
    registry.register("net", second["net"])  # the same function, defined again
    assert registry.entry("net") is second["net"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("net", _Tiny)


def test_one_file_loaded_under_two_module_names_registers_once() -> None:
    """A script run twice or loaded by path under another name replaces its own entry (it
    used to be refused as a different function, depending on which test loaded it first)."""
    import importlib.util

    path = REPO / "examples" / "custom_network.py"
    for name in ("adanet_example_once", "adanet_example_twice"):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    assert "tiny_multiscale" in adanet.list_models()
