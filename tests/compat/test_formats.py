"""adanet.compat: the explicit registries of the originals' formats and cost rules, and the
deprecated adanet.reference_args shim."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
from torch import Tensor, nn

import adanet
from adanet import compat
from adanet.compat import reference_costs


def test_each_network_and_its_config_find_their_format() -> None:
    ranet = compat.reference_format_for(adanet.RANetConfig)
    assert ranet is compat.reference_format_for(adanet.RANet(adanet.RANetConfig()))
    assert ranet.arch == "RANet" and ranet.option_names["nBlocks"] == "num_blocks"
    msdnet = compat.reference_format_for("MSDNET")
    assert msdnet.config_cls is adanet.MSDNetConfig and msdnet.defaults["nChannels"] == 32


def test_a_model_without_a_format_loads_names_as_they_are() -> None:
    with pytest.raises(LookupError, match="register_reference_format"):
        compat.reference_format_for(nn.Linear)
    assert compat.find_reference_format(nn.Linear(2, 2)) is None
    with pytest.raises(LookupError, match="no original format for arch 'resnet'"):
        compat.reference_format_for("resnet")


def test_registering_twice_or_something_else_is_refused() -> None:
    ranet = compat.reference_format_for("RANet")
    with pytest.raises(ValueError, match="already registered"):
        compat.register_reference_format(ranet)
    with pytest.raises(TypeError, match="ReferenceFormat"):
        compat.register_reference_format({"arch": "x"})  # type: ignore[arg-type]


class _MyReLU(nn.ReLU):
    pass


class _Scale(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2


def test_a_cost_rule_can_be_registered_for_a_module_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_costs, "_RULES", dict(reference_costs._RULES))
    assert compat.reference_cost_rule(_Scale()) is None  # counts nothing by default

    def rule(module: nn.Module, x: Tensor, out: Tensor) -> float:
        return float(out.numel())

    compat.register_reference_cost_rule(_Scale, rule)
    assert compat.reference_cost_rule(_Scale()) is rule
    # A subclass without a rule of its own is counted as its base class.
    assert compat.reference_cost_rule(_MyReLU()) is compat.reference_cost_rule(nn.ReLU())
    assert compat.reference_cost_rule(nn.ReLU6()) is None  # not a ReLU: the original skips it
    with pytest.raises(TypeError, match=r"nn\.Module subclass"):
        compat.register_reference_cost_rule(int, rule)  # type: ignore[arg-type]


def test_reference_args_is_a_deprecated_alias_of_compat_args() -> None:
    sys.modules.pop("adanet.reference_args", None)
    with pytest.warns(DeprecationWarning, match="adanet.compat.args"):
        shim: Any = importlib.import_module("adanet.reference_args")
    assert shim.parse_reference_args is compat.parse_reference_args
    assert shim.REFERENCE_DATASETS is compat.REFERENCE_DATASETS


@pytest.mark.parametrize("config_class", [adanet.RANetConfig, adanet.MSDNetConfig])
def test_reading_args_from_something_that_is_not_text_or_a_path(config_class: Any) -> None:
    with pytest.raises(TypeError, match=r"path of an original args\.txt"):
        config_class.from_reference_args(123)
    with pytest.raises(FileNotFoundError, match="no args file"):
        config_class.from_reference_args("missing/args.txt")
