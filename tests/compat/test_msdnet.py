"""adanet.compat.msdnet: the original MSDNet's args.txt options and checkpoint parameter
names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from adanet.compat import read_reference_config, reference_format_for
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from small_configs import SMALL_MSDNET

README_CIFAR100_ANYTIME = (
    "Namespace(arch='msdnet', base=4, batch_size=64, bnFactor=[1, 2, 4], bottleneck=True, "
    "data='cifar100', epochs=300, grFactor=[1, 2, 4], growthRate=6, nBlocks=7, nChannels=16, "
    "nScales=3, prune='max', reduction=0.5, step=2, stepmode='even')"
)


SMALL = SMALL_MSDNET


def test_read_reference_config_reads_the_readme_command() -> None:
    config = read_reference_config(arch="msdnet", path_or_text=README_CIFAR100_ANYTIME)
    assert config == MSDNetConfig.preset("cifar100_anytime")


def test_read_reference_config_reads_the_visible_reference_file(reference_dir: Path) -> None:
    path = reference_dir / "msdnet" / "cifar100_anytime.args.txt"
    assert read_reference_config(arch="msdnet", path_or_text=path) == MSDNetConfig.preset(
        "cifar100_anytime"
    )
    assert read_reference_config(arch="msdnet", path_or_text=str(path)).num_classes == 100


def test_read_reference_config_reads_a_written_file(tmp_path: Path) -> None:
    path = tmp_path / "args.txt"
    path.write_text(README_CIFAR100_ANYTIME.replace("cifar100", "cifar10") + "\n")
    config = read_reference_config(arch="msdnet", path_or_text=path)
    assert config == MSDNetConfig.preset("cifar10_anytime")


def test_read_reference_config_imagenet_with_string_factors() -> None:
    text = (
        "Namespace(arch='msdnet', data='ImageNet', nBlocks=5, stepmode='even', step=4, base=4, "
        "nChannels=32, growthRate=16, grFactor='1-2-4-4', bnFactor='1-2-4-4', prune='max', "
        "bottleneck=True, reduction=0.5)"
    )
    assert read_reference_config(arch="msdnet", path_or_text=text) == MSDNetConfig.preset(
        "imagenet"
    )


def test_read_reference_config_uses_the_original_defaults() -> None:
    config = read_reference_config(
        arch="msdnet", path_or_text="Namespace(arch='msdnet', data='cifar10')"
    )
    # args.py: nBlocks 1, base 4, step 1, nChannels 32, growthRate 6, 1-2-4, prune max; its
    # stepmode default None builds lin_grow blocks.
    assert config.num_blocks == 1
    assert config.base == 4
    assert config.num_channels == 32
    assert config.growth_factors == (1, 2, 4)
    assert config.step_mode == "lin_grow"
    assert config.num_classes == 10


def test_read_reference_config_ignores_extra_bottleneck_factors_as_the_original() -> None:
    text = "Namespace(arch='msdnet', data='cifar10', grFactor='1-2', bnFactor='1-2-4')"
    assert read_reference_config(arch="msdnet", path_or_text=text).bottleneck_factors == (1, 2)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Namespace(arch='RANet', data='cifar10')", "arch='RANet'"),
        ("Namespace(arch='resnet', data='cifar10')", "not msdnet"),
        ("Namespace(arch='msdnet', data='svhn')", "unknown dataset"),
        ("Namespace(arch='msdnet', data='cifar10', grFactor='1-x-4')", "grFactor"),
        ("Namespace(arch='msdnet', data='cifar10', nScales=4)", "nScales"),
        ("Namespace(arch='msdnet', data='cifar10', prune='avg')", "prune"),
        ("Namespace(arch='msdnet', data='cifar10', growthRate=5, grFactor='1-1-1')", "even"),
    ],
)
def test_read_reference_config_refuses_bad_args(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        read_reference_config(arch="msdnet", path_or_text=text)


def test_read_reference_config_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        read_reference_config(arch="msdnet", path_or_text="/no/such/args.txt")


def _translator(model: MSDNet) -> Callable[[str], str]:
    fmt = reference_format_for(model)
    return lambda key: fmt.translate_key(model, key)


def test_translate_reference_key() -> None:
    model = MSDNet(SMALL)
    translate = _translator(model)
    assert translate("blocks.0.0.layers.0.net.0.weight") == "stem.layers.0.0.weight"
    assert translate("blocks.0.0.layers.2.net.1.bias") == "stem.layers.2.1.bias"
    assert (
        translate("blocks.0.1.layers.1.conv_down.net.3.weight")
        == "blocks.0.0.units.1.down.1.0.weight"
    )
    assert (
        translate("blocks.2.0.layers.0.conv_normal.net.4.running_var")
        == "blocks.2.0.units.0.conv.1.1.running_var"
    )
    assert translate("blocks.1.1.m.0.net.1.weight") == "blocks.1.1.convs.0.1.weight"
    assert translate("classifier.2.m.1.net.0.weight") == "exits.2.convs.1.0.weight"
    assert translate("classifier.0.linear.bias") == "exits.0.classifier.bias"
    assert translate("something.else") == "something.else"
    no_bottleneck = MSDNet(replace(SMALL, bottleneck=False))
    assert (
        _translator(no_bottleneck)("blocks.0.1.layers.0.conv_normal.net.1.weight")
        == "blocks.0.0.units.0.conv.1.weight"
    )
    imagenet = MSDNet(replace(SMALL, variant="imagenet"))
    assert _translator(imagenet)("blocks.0.0.layers.0.0.bias") == "stem.layers.0.0.0.bias"


def test_own_state_dict_keys_survive_translation() -> None:
    model = MSDNet(SMALL)
    translate = _translator(model)
    for key in model.state_dict():
        assert translate(key) == key
