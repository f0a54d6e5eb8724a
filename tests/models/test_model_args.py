"""Tests of ``adanet.models.model_args.ModelArgs``, the record of how ``adanet.create_model``
built a network: the registered name and exactly the keyword arguments its entry point got
(``num_classes`` only when given), enough to build the same network again; networks built
any other way carry none. Also the record itself: frozen, with an empty, unshared default
for the arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import adanet
from adanet.models.model_args import ModelArgs
from adanet.models.registry import default_registry

_ENTRY_NAME = "test_model_args_probe"


def test_create_model_records_its_name_and_arguments() -> None:
    model = adanet.create_model("ranet_cifar10", num_classes=7, num_blocks=1, step=1)
    assert model.model_args is not None
    assert model.model_args.name == "ranet_cifar10"
    assert model.model_args.arguments == {"num_blocks": 1, "step": 1, "num_classes": 7}
    assert adanet.RANet(adanet.RANetConfig()).model_args is None


def test_without_overrides_the_arguments_are_empty() -> None:
    model = adanet.create_model("msdnet_cifar10_budgeted")
    assert model.model_args == ModelArgs("msdnet_cifar10_budgeted", {})


def test_num_classes_left_out_or_none_is_not_recorded() -> None:
    model = adanet.create_model("msdnet_cifar100_anytime", num_classes=None, num_blocks=1)
    assert model.model_args is not None
    assert model.model_args.arguments == {"num_blocks": 1}
    assert isinstance(model, adanet.MSDNet) and model.config.num_classes == 100  # the preset's


def test_the_record_builds_an_equal_network_again() -> None:
    first = adanet.create_model("msdnet_cifar10_anytime", num_classes=3, num_blocks=2, base=1)
    assert first.model_args is not None
    args = first.model_args
    second = adanet.create_model(args.name, **args.arguments)
    assert isinstance(first, adanet.MSDNet) and isinstance(second, adanet.MSDNet)
    assert second.config == first.config
    assert second.model_args == first.model_args


class _Probe(adanet.EarlyExitNetwork):
    """One 1×1 conv and one head: the smallest network an entry point can return."""

    def __init__(self, num_classes: int = 2, width: int = 2) -> None:
        super().__init__()
        self.in_channels = 3
        self.body = torch.nn.Conv2d(3, width, 1)
        self.exits = torch.nn.ModuleList(
            [
                torch.nn.Sequential(
                    torch.nn.AdaptiveAvgPool2d(1),
                    torch.nn.Flatten(),
                    torch.nn.Linear(width, num_classes),
                )
            ]
        )

    def begin(self, x: torch.Tensor) -> Any:
        return x

    def advance(self, state: Any, exit_index: int) -> tuple[torch.Tensor, Any]:
        y = self.body(state)
        return y, y


@pytest.fixture
def probe_calls() -> Iterator[list[dict[str, Any]]]:
    """Register an entry point that logs the keyword arguments it is called with."""
    calls: list[dict[str, Any]] = []

    def probe(**kwargs: Any) -> _Probe:
        calls.append(dict(kwargs))
        return _Probe(**kwargs)

    default_registry.register(_ENTRY_NAME, probe)
    try:
        yield calls
    finally:
        default_registry.unregister(_ENTRY_NAME)


def test_a_registered_entry_point_gets_exactly_the_recorded_arguments(
    probe_calls: list[dict[str, Any]],
) -> None:
    model = adanet.create_model(_ENTRY_NAME, num_classes=4, width=3)
    assert probe_calls == [{"width": 3, "num_classes": 4}]
    assert model.model_args == ModelArgs(_ENTRY_NAME, {"width": 3, "num_classes": 4})
    # Calling the entry point directly builds a network without a record.
    direct = default_registry.entry(_ENTRY_NAME)(width=3)
    assert direct.model_args is None


# ----------------------------------------------------------------------------- the record


def test_the_arguments_default_to_an_empty_dict_of_their_own() -> None:
    first, second = ModelArgs("a"), ModelArgs("b")
    assert first.arguments == {} and second.arguments == {}
    assert first.arguments is not second.arguments


def test_the_record_is_frozen_and_compares_by_value() -> None:
    record = ModelArgs("ranet_cifar10", {"num_classes": 7})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]
    assert record == ModelArgs("ranet_cifar10", {"num_classes": 7})
    assert record != ModelArgs("ranet_cifar10", {"num_classes": 8})
    assert record != ModelArgs("ranet_cifar100", {"num_classes": 7})
    assert [f.name for f in dataclasses.fields(ModelArgs)] == ["name", "arguments"]
