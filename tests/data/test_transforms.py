"""adanet.data.transforms: the originals' CIFAR and ImageNet transforms, read from a
PretrainedCfg."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adanet.data import cifar_transforms, imagenet_transforms
from adanet.models.pretrained_cfg import CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg

pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")


def _image(height: int, width: int, seed: int = 0) -> object:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _normalised(pixels: torch.Tensor, prep: PretrainedCfg) -> torch.Tensor:
    mean = torch.tensor(prep.mean).view(-1, 1, 1)
    std = torch.tensor(prep.std).view(-1, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def test_cifar_evaluation_only_normalises_with_the_datasets_statistics() -> None:
    image = _image(32, 32)
    got = cifar_transforms(train=False, name="cifar100")(image)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    torch.testing.assert_close(got, _normalised(pixels, CIFAR100_CFG))


def test_cifar_training_crops_with_padding_and_flips() -> None:
    transform = cifar_transforms(train=True)
    image = _image(32, 32)
    torch.manual_seed(0)
    draws = [transform(image) for _ in range(6)]
    assert all(d.shape == (3, 32, 32) for d in draws)
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_imagenet_evaluation_resizes_by_crop_pct_then_centre_crops() -> None:
    # A 512 x 384 image: the short side goes to round(224 / 0.875) = 256, then the centre 224.
    image = _image(384, 512)
    got = imagenet_transforms(train=False)(image)
    assert got.shape == (3, 224, 224)
    resized = np.array(image.resize((341, 256), Image.BILINEAR))  # type: ignore[attr-defined]
    top, left = (256 - 224) // 2, (341 - 224) // 2
    crop = torch.from_numpy(resized[top : top + 224, left : left + 224]).permute(2, 0, 1)
    # torchvision resizes a PIL image with PIL's own filter: the same pixels.
    torch.testing.assert_close(got, _normalised(crop, IMAGENET_CFG))


def test_a_models_preprocessing_replaces_the_defaults() -> None:
    prep = dataclasses.replace(IMAGENET_CFG, input_size=(3, 64, 64), crop_pct=0.5)
    assert imagenet_transforms(train=False, preprocessing=prep)(_image(200, 150)).shape == (
        3,
        64,
        64,
    )
    assert imagenet_transforms(train=True, image_size=48)(_image(100, 90)).shape == (3, 48, 48)
    small = dataclasses.replace(CIFAR100_CFG, input_size=(3, 24, 24))
    assert cifar_transforms(train=True, preprocessing=small)(_image(24, 24)).shape == (3, 24, 24)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="name must be one of 'cifar10', 'cifar100'"):
        cifar_transforms(train=False, name="svhn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size must be an int >= 1, got 0"):
        imagenet_transforms(train=False, image_size=0)
    with pytest.raises(TypeError, match="image_size"):
        imagenet_transforms(train=False, image_size=224.0)  # type: ignore[arg-type]
