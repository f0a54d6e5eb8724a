"""adanet.compat.formats: the explicit registry of the originals' formats, and reading an
original run's config through it."""

from __future__ import annotations

import pytest
from torch import nn

import adanet
from adanet import compat


def test_each_network_and_its_config_find_their_format() -> None:
    ranet = compat.reference_format_for(adanet.RANetConfig)
    assert ranet is compat.reference_format_for(adanet.RANet(adanet.RANetConfig()))
    assert ranet.arch == "RANet" and ranet.option_names["nBlocks"] == "num_blocks"
    msdnet = compat.reference_format_for("MSDNET")
    assert msdnet.architecture == "MSDNet" and msdnet.defaults["nChannels"] == 32
    registered = adanet.models.registry.default_registry.architecture(msdnet.architecture)
    assert registered.config_cls is adanet.MSDNetConfig


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


@pytest.mark.parametrize("arch", ["RANet", "msdnet", None])
def test_reading_args_from_something_that_is_not_text_or_a_path(arch: str | None) -> None:
    with pytest.raises(TypeError, match=r"path of an original args\.txt"):
        compat.read_reference_config(123, arch=arch)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no args file"):
        compat.read_reference_config("missing/args.txt", arch=arch)
