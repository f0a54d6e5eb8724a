"""adanet.cli.spec: the model config and the RunSpec a command line resolves to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import adanet.cli as cli
from adanet import RANetConfig
from adanet.compat import read_reference_config
from cli_runs import TINY, parse


def test_original_command_line_builds_the_published_config() -> None:
    args = parse(
        "--arch RANet --data-root /x --data cifar10 --step 4 --stepmode even "
        "--scale-list 1-2-3-3 --grFactor 4-2-1-1 --bnFactor 4-2-1-1"
    )
    arch, config = cli.build_config(args)
    assert arch == "RANet"
    assert config == RANetConfig.preset("cifar10")


def test_defaults_are_the_originals_and_data_sets_classes() -> None:
    _, config = cli.build_config(parse("--data cifar100"))
    assert config == RANetConfig(num_classes=100)  # args.py defaults: 2 blocks, 4-2-1, ...
    _, imagenet = cli.build_config(parse("--data imagenet --preset imagenet"))
    assert imagenet == RANetConfig.preset("imagenet")


def test_preset_then_explicit_flags_override() -> None:
    _, config = cli.build_config(parse("--preset cifar10 --nBlocks 3 --data digits"))
    expected = RANetConfig.from_dict({**RANetConfig.preset("cifar10").to_dict(), "num_blocks": 3})
    assert config == expected
    assert config.variant == "cifar" and config.num_classes == 10


def test_args_txt_reads_back_with_from_reference_args() -> None:
    args = parse("--data cifar10 --preset cifar10_budgeted --growthRate 8 --data-root /x")
    arch, config = cli.build_config(args)
    line = cli.reference_args_line(args, arch, config)
    assert line.startswith("Namespace(")
    assert read_reference_config(arch="RANet", path_or_text=line) == config


def test_msdnet_is_available_when_importable() -> None:
    msdnet = pytest.importorskip("adanet.models.msdnet_config")
    arch, config = cli.build_config(parse("--arch msdnet --preset cifar10_anytime"))
    assert arch == "msdnet"
    assert config == msdnet.MSDNetConfig.preset("cifar10_anytime")


def test_unknown_arch_and_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--arch", "resnet", "--data", "digits"]) == 2
    assert "unknown --arch 'resnet'" in capsys.readouterr().err
    assert cli.main(["train", "--preset", "nope", "--data", "digits"]) == 2
    assert "unknown RANet preset 'nope'" in capsys.readouterr().err


def test_bn_after_can_be_turned_off_and_the_original_flag_still_works() -> None:
    assert cli.build_config(parse("--data digits"))[1].bn_after is True
    assert cli.build_config(parse("--data digits --bnAfter"))[1].bn_after is True
    assert cli.build_config(parse("--data digits --no-bnAfter"))[1].bn_after is False


def test_an_option_the_architecture_lacks_is_an_error_not_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["train", "--data", "digits", "--base", "3"]) == 2
    assert "--base does not apply to --arch RANet" in capsys.readouterr().err
    assert cli.main(["train", "--data", "digits", "--arch", "msdnet", "--no-bnAfter"]) == 2
    assert "--bnAfter does not apply to --arch msdnet" in capsys.readouterr().err


def test_a_zero_channel_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["train", *TINY, "--data", "digits", "-j", "0", "--reduction", "0.01", "--save",
                     str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "adanet: error:" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_run_spec_is_built_once_and_leaves_the_namespace_alone(
    finished_run: Path,
) -> None:
    import dataclasses

    from adanet.cli.spec import RunSpec

    args = parse("--data digits --nBlocks 1 --seed 7")
    before = dict(vars(args))
    spec = RunSpec.from_args(args)
    assert vars(args) == before
    assert spec.seed == 7 and spec.data == "digits" and spec.use_valid is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 8  # type: ignore[misc]
    saved = json.loads((finished_run / "config.json").read_text())
    assert set(saved) == set(spec.to_dict())  # config.json is the spec, as it is
    assert saved["seed"] == 3 and saved["use_valid"] is True and saved["config"]["num_blocks"] == 1
