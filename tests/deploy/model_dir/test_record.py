"""The architecture record in ``config.json`` (``adanet.deploy.model_dir.record``): format
versions, unknown architectures and registered networks of one's own."""

from __future__ import annotations

from pathlib import Path

import pytest

import adanet
from adanet.deploy.model_dir import PretrainedError, load_pretrained, save_pretrained
from conftest import load_example
from model_dirs import PREP, rewrite_json, small_ranet
from sealed_folders import reseal


def test_newer_format_versions_are_refused(tmp_path: Path) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP)
    rewrite_json(tmp_path / "config.json", lambda d: d.__setitem__("format_version", 2))
    reseal(tmp_path)
    with pytest.raises(PretrainedError, match="format version 2, newer"):
        load_pretrained(tmp_path)
    rewrite_json(tmp_path / "checksums.json", lambda d: d.__setitem__("format_version", 3))
    with pytest.raises(PretrainedError, match="format version 3, newer"):
        load_pretrained(tmp_path)


def test_unknown_architecture_is_a_clear_error(tmp_path: Path) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP)
    rewrite_json(tmp_path / "config.json", lambda d: d.__setitem__("arch", "ResNeXt"))
    reseal(tmp_path)
    with pytest.raises(PretrainedError, match=r"unknown architecture 'ResNeXt'.*MSDNet.*RANet"):
        load_pretrained(tmp_path)


def test_an_unregistered_model_name_is_a_clear_error(tmp_path: Path) -> None:
    load_example("custom_network")
    model = adanet.create_model("tiny_multiscale", num_classes=2).eval()
    save_pretrained(model, tmp_path / "tiny", preprocessing=PREP, safetensors=False)
    registry = adanet.models.registry.default_registry
    entry = registry.entry("tiny_multiscale")
    registry.unregister("tiny_multiscale")
    try:
        with pytest.raises(PretrainedError, match="import the module that registers it"):
            load_pretrained(tmp_path / "tiny")
    finally:
        registry.register("tiny_multiscale", entry)
