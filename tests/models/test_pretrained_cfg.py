"""PretrainedCfg: presets equal to adanet.data's statistics, validation, dict round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

import adanet
from adanet import data
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg


def test_presets_hold_the_statistics_adanet_data_normalises_with() -> None:
    assert (CIFAR10_CFG.mean, CIFAR10_CFG.std) == (data.CIFAR10_MEAN, data.CIFAR10_STD)
    assert (CIFAR100_CFG.mean, CIFAR100_CFG.std) == (data.CIFAR100_MEAN, data.CIFAR100_STD)
    assert (IMAGENET_CFG.mean, IMAGENET_CFG.std) == (data.IMAGENET_MEAN, data.IMAGENET_STD)
    # The original evaluation resizes to 256 and centre-crops 224.
    assert IMAGENET_CFG.input_size == (3, 224, 224) and round(224 / IMAGENET_CFG.crop_pct) == 256
    assert CIFAR10_CFG.input_size == (3, 32, 32) and CIFAR10_CFG.crop_pct == 1.0


def test_models_carry_the_cfg_of_their_data() -> None:
    assert adanet.create_model("ranet_cifar10").pretrained_cfg == CIFAR10_CFG
    assert adanet.create_model("msdnet_cifar100_anytime").pretrained_cfg == CIFAR100_CFG
    small = {"num_channels": 4, "growth_rate": 4}
    assert adanet.create_model("ranet_imagenet", **small).pretrained_cfg == IMAGENET_CFG
    gray = adanet.RANet(adanet.RANetConfig(in_channels=1))
    assert gray.pretrained_cfg.input_size == (1, 32, 32) and gray.pretrained_cfg.mean == (0.5,)


def test_dict_and_json_round_trip() -> None:
    text = json.dumps(IMAGENET_CFG.to_dict())
    assert PretrainedCfg.from_dict(json.loads(text)) == IMAGENET_CFG


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"input_size": (3, 32)}, ValueError, "input_size"),
        ({"mean": (0.5, 0.5)}, ValueError, "one entry per input channel"),
        ({"std": (0.5, 0.0, 0.5)}, ValueError, "positive"),
        ({"mean": "abc"}, TypeError, "tuple of numbers"),
        ({"interpolation": "lanczos"}, ValueError, "interpolation"),
        ({"crop_pct": 0}, ValueError, "crop_pct"),
    ],
)
def test_bad_values_are_refused(
    changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        PretrainedCfg(**{**CIFAR10_CFG.to_dict(), **changes})


def test_from_dict_refuses_unknown_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="unknown PretrainedCfg fields"):
        PretrainedCfg.from_dict({**CIFAR10_CFG.to_dict(), "size": 3})
    with pytest.raises(ValueError, match="needs"):
        PretrainedCfg.from_dict({"input_size": [3, 32, 32]})
    with pytest.raises(TypeError, match="dict"):
        PretrainedCfg.from_dict([1, 2])  # type: ignore[arg-type]


def test_assigning_something_else_is_refused() -> None:
    model = adanet.RANet(adanet.RANetConfig())
    with pytest.raises(TypeError, match="PretrainedCfg"):
        model.pretrained_cfg = {"mean": 1}  # type: ignore[assignment]
    model.pretrained_cfg = IMAGENET_CFG
    assert model.pretrained_cfg is IMAGENET_CFG
