"""adanet.compat.ranet: the original RANet's args.txt options and checkpoint parameter names."""

from __future__ import annotations

from typing import Any

import pytest

from adanet import RANet, RANetConfig
from adanet.compat import read_reference_config
from adanet.compat.ranet import translate_ranet_key
from small_configs import SMALL_RANET

REFERENCE_LINE = (
    "Namespace(arch='RANet', batch_size=64, block_step=2, bnAfter=True, bnFactor=[4, 2, 1], "
    "compress_factor=0.25, data='cifar100', data_root='/data', grFactor=[4, 2, 1], "
    "growthRate=6, nBlocks=2, nChannels=16, nScales=3, reduction=0.5, scale_list=[1, 2, 3], "
    "step=2, stepmode='lg', use_valid=False)"
)


def test_read_reference_config_text_and_file(tmp_path: Any) -> None:
    config = read_reference_config(arch="RANet", path_or_text=REFERENCE_LINE)
    assert config == RANetConfig(step=2, step_mode="lg", num_classes=100, growth_factors=(4, 2, 1))
    path = tmp_path / "args.txt"
    path.write_text(REFERENCE_LINE + "\n")
    assert read_reference_config(arch="RANet", path_or_text=path) == config
    assert read_reference_config(arch="RANet", path_or_text=str(path)) == config


def test_read_reference_config_accepts_unparsed_factor_strings() -> None:
    line = "Namespace(arch='RANet', data='ImageNet', grFactor='4-2-2-1', bnFactor='4-2-2-1', "
    line += "scale_list='1-2-3-4', nChannels=64, growthRate=16, step=8)"
    config = read_reference_config(arch="RANet", path_or_text=line)
    assert config == RANetConfig.preset("imagenet")


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("Namespace(arch='RANet', data='svhn')", "unknown dataset data='svhn'"),
        ("Namespace(arch='msdnet', data='cifar10')", "arch='msdnet'"),
        ("Namespace(arch='RANet', stepmode='log')", "step_mode"),
        ("Namespace(arch='RANet', grFactor='4-x-1')", "grFactor must look like"),
        ("Namespace(arch=__import__('os').getcwd())", "not a Python literal"),
        ("Namespace(", "cannot parse"),
        ("Namespace(1, 2)", "expected one 'Namespace"),
    ],
)
def test_read_reference_config_errors(line: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        read_reference_config(arch="RANet", path_or_text=line)


def test_read_reference_config_reads_adanets_digits_runs() -> None:
    config = read_reference_config(
        arch="RANet", path_or_text="Namespace(arch='RANet', data='digits')"
    )
    assert (config.variant, config.num_classes) == ("cifar", 10)


def test_missing_args_file(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="no args file"):
        read_reference_config(arch="RANet", path_or_text=tmp_path / "missing.txt")


SMALL = SMALL_RANET

# The original's parameter names and adanet's, for SMALL (conv -> norm -> act layers).
ORIGINAL_KEYS = {
    "FirstLayer.layers.0.net.0.weight": "stem.layers.0.0.weight",
    "scale_flows.0.0.layers.0.conv_normal.net.4.running_var": (
        "branches.0.blocks.0.layers.0.conv.1.1.running_var"
    ),
    "scale_flows.1.0.layers.0.conv_up.net.0.weight": (
        "branches.1.blocks.0.layers.0.coarse_conv.0.0.weight"
    ),
    "scale_flows.1.0.conv_last.net.1.bias": "branches.1.blocks.0.fuse_last.1.bias",
    "scale_flows.1.0.trans.net.0.weight": "branches.1.blocks.0.transition.0.weight",
    "classifier.0.linear.weight": "exits.0.classifier.weight",
}


def test_original_parameter_names_map_onto_the_models() -> None:
    model = RANet(SMALL)
    keys = set(model.state_dict())
    for original, ours in ORIGINAL_KEYS.items():
        assert translate_ranet_key(model, original) == ours
        assert ours in keys, ours


def test_own_and_unknown_names_are_left_alone() -> None:
    model = RANet(SMALL)
    for key in model.state_dict():
        assert translate_ranet_key(model, key) == key
    assert translate_ranet_key(model, "something.else") == "something.else"


def test_pre_activation_layers_keep_the_originals_flat_indices() -> None:
    model = RANet(SMALL.replace(bn_after=False))
    key = translate_ranet_key(model, "scale_flows.0.0.layers.0.conv_normal.net.5.weight")
    assert key == "branches.0.blocks.0.layers.0.conv.5.weight"
    assert key in model.state_dict()
