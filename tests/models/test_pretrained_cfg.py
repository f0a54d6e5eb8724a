"""PretrainedCfg: presets equal to adanet.data's statistics, validation, dict round trip, and
the read-only mapping timm's data helpers read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import torch

import adanet
from adanet import data
from adanet.data.transforms import cifar_transforms, imagenet_transforms
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg

# Small enough to build in a blink for the two ImageNet presets.
_SMALL = {"num_channels": 4, "growth_rate": 4}
_KEYS = {"input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode"}


def _every_model() -> list[adanet.EarlyExitNetwork]:
    """Every registered preset, plus a one-channel RANet (statistics 0.5/0.5)."""
    models = [
        adanet.create_model(name, **(_SMALL if "imagenet" in name else {}))
        for name in adanet.list_models()
    ]
    return [*models, adanet.RANet(adanet.RANetConfig(in_channels=1))]


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
    assert adanet.create_model("ranet_imagenet", **_SMALL).pretrained_cfg == IMAGENET_CFG
    gray = adanet.RANet(adanet.RANetConfig(in_channels=1))
    assert gray.pretrained_cfg.input_size == (1, 32, 32) and gray.pretrained_cfg.mean == (0.5,)


def test_dict_and_json_round_trip() -> None:
    text = json.dumps(IMAGENET_CFG.to_dict())
    assert PretrainedCfg.from_dict(json.loads(text)) == IMAGENET_CFG
    # The JSON form holds the fields only, as model directories store it.
    assert set(IMAGENET_CFG.to_dict()) == _KEYS - {"crop_mode"}


def test_the_mapping_has_timms_data_config_keys_with_typed_values() -> None:
    cfg = PretrainedCfg(
        input_size=(1, 28, 20), mean=(0.25,), std=(2,), interpolation="bicubic", crop_pct=0.5
    )
    assert isinstance(cfg, Mapping)
    assert list(cfg) == list(cfg.keys()) and set(cfg) == _KEYS and len(cfg) == len(_KEYS)
    assert dict(cfg) == {
        "input_size": (1, 28, 20),
        "interpolation": "bicubic",
        "mean": (0.25,),
        "std": (2.0,),
        "crop_pct": 0.5,
        "crop_mode": "center",
    }
    # Each value is the typed attribute of the same name, of the type timm expects.
    assert all(cfg[key] == getattr(cfg, key) for key in cfg)
    assert isinstance(cfg["input_size"], tuple) and all(type(v) is int for v in cfg["input_size"])
    assert all(type(v) is float for v in (*cfg["mean"], *cfg["std"], cfg["crop_pct"]))
    assert isinstance(cfg["interpolation"], str) and cfg.crop_mode == "center"
    assert cfg.get("mean") == (0.25,) and "std" in cfg
    assert cfg.get("num_classes") is None and cfg.get("test_input_size", 7) == 7
    assert "num_classes" not in cfg
    with pytest.raises(KeyError, match="test_crop_pct"):
        cfg["test_crop_pct"]
    # Read-only: neither item nor attribute assignment.
    with pytest.raises(TypeError):
        cfg["mean"] = (0.5,)  # type: ignore[index]
    with pytest.raises(AttributeError):
        cfg.mean = (0.5,)  # type: ignore[misc]
    # Equality is by value between configs and never with a plain dict; configs hash.
    assert cfg == PretrainedCfg.from_dict(dict(cfg)) and hash(cfg) == hash(
        PretrainedCfg.from_dict(cfg)
    )
    assert cfg != dict(cfg) and cfg != CIFAR10_CFG


def test_every_model_s_cfg_is_a_mapping_of_its_own_fields() -> None:
    for model in _every_model():
        cfg = model.pretrained_cfg
        assert set(cfg) == _KEYS and cfg["input_size"][0] == model.in_channels
        assert len(cfg["mean"]) == len(cfg["std"]) == model.in_channels


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"input_size": (3, 32)}, ValueError, "input_size"),
        ({"input_size": (3, 32.0, 32)}, TypeError, "input_size"),
        ({"input_size": (True, 32, 32)}, TypeError, "channels"),
        ({"mean": (0.5, 0.5)}, ValueError, "one entry per input channel"),
        ({"std": (0.5, 0.0, 0.5)}, ValueError, "positive"),
        ({"mean": "abc"}, TypeError, "tuple of numbers"),
        ({"mean": (0.5, float("nan"), 0.5)}, ValueError, r"mean\[1\]"),
        ({"std": (0.5, True, 0.5)}, TypeError, r"std\[1\]"),
        ({"interpolation": "lanczos"}, ValueError, "interpolation"),
        ({"crop_pct": 0}, ValueError, "crop_pct"),
        ({"crop_pct": "1"}, TypeError, "crop_pct"),
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
    with pytest.raises(ValueError, match="crop_mode must be one of 'center', got 'squash'"):
        PretrainedCfg.from_dict({**CIFAR10_CFG.to_dict(), "crop_mode": "squash"})


def test_assigning_something_else_is_refused() -> None:
    model = adanet.RANet(adanet.RANetConfig())
    with pytest.raises(TypeError, match="PretrainedCfg"):
        model.pretrained_cfg = {"mean": 1}  # type: ignore[assignment]
    model.pretrained_cfg = IMAGENET_CFG
    assert model.pretrained_cfg is IMAGENET_CFG


def _image(height: int, width: int) -> Any:
    from PIL import Image

    pixels = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(0))
    return Image.fromarray(pixels.to(torch.uint8).numpy())


def test_timms_data_helpers_read_every_models_cfg() -> None:
    timm_data = pytest.importorskip("timm.data")
    for model in _every_model():
        cfg = model.pretrained_cfg
        resolved = timm_data.resolve_model_data_config(model)
        assert resolved == dict(cfg)
        assert timm_data.create_transform(**resolved) is not None
        assert timm_data.create_transform(**cfg) is not None


@pytest.mark.parametrize(
    ("cfg", "adanet_transform", "size"),
    [
        (IMAGENET_CFG, imagenet_transforms(train=False), (300, 260)),
        (CIFAR100_CFG, cifar_transforms(train=False, name="cifar100"), (32, 32)),
    ],
)
def test_timms_evaluation_transform_equals_adanets(
    cfg: PretrainedCfg, adanet_transform: Any, size: tuple[int, int]
) -> None:
    timm_data = pytest.importorskip("timm.data")
    model = adanet.RANet(adanet.RANetConfig())
    model.pretrained_cfg = cfg
    transform = timm_data.create_transform(**timm_data.resolve_model_data_config(model))
    image = _image(*size)
    ours = adanet_transform(image)
    assert ours.shape == cfg.input_size
    torch.testing.assert_close(transform(image), ours)
