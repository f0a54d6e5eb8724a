"""Image preprocessing: normalisation constants and the originals' transforms.

Mean, std, input size, interpolation and crop ratio of each dataset live in one
:class:`Preprocessing` object (the fields of a model's ``pretrained_cfg``), and the transform
builders read only that object, so a model's own preprocessing can be passed in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor

from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_PREPROCESSING",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_PREPROCESSING",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_PREPROCESSING",
    "IMAGENET_STD",
    "Preprocessing",
    "cifar_transforms",
    "imagenet_transforms",
]

# Constants of the original RANet/MSDNet dataloader.py, kept as names for the data API.
CIFAR10_MEAN: tuple[float, ...] = CIFAR10_CFG.mean
CIFAR10_STD: tuple[float, ...] = CIFAR10_CFG.std
CIFAR100_MEAN: tuple[float, ...] = CIFAR100_CFG.mean
CIFAR100_STD: tuple[float, ...] = CIFAR100_CFG.std
IMAGENET_MEAN: tuple[float, ...] = IMAGENET_CFG.mean
IMAGENET_STD: tuple[float, ...] = IMAGENET_CFG.std

# The preprocessing of a dataset is the same object a model carries as ``pretrained_cfg``;
# the old name stays for the data API.
Preprocessing = PretrainedCfg


def _normalize(prep: PretrainedCfg) -> Callable[[Tensor], Tensor]:
    """torchvision's ``Normalize`` with the preprocessing's mean and std."""
    from torchvision import transforms

    normalize: Callable[[Tensor], Tensor] = transforms.Normalize(
        mean=list(prep.mean), std=list(prep.std)
    )
    return normalize


CIFAR10_PREPROCESSING = CIFAR10_CFG
CIFAR100_PREPROCESSING = CIFAR100_CFG
IMAGENET_PREPROCESSING = IMAGENET_CFG


def cifar_transforms(
    train: bool,
    name: Literal["cifar10", "cifar100"] = "cifar10",
    preprocessing: Preprocessing | None = None,
) -> Callable[[Any], Tensor]:
    """The original CIFAR transforms for PIL images.

    Training: ``RandomCrop(size, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``ToTensor()``, ``Normalize``.

    Args:
        train: Whether to include the training augmentation.
        name: Which dataset's constants to use (:data:`CIFAR10_PREPROCESSING` or
            :data:`CIFAR100_PREPROCESSING`) when ``preprocessing`` is not given.
        preprocessing: Size and normalisation to use instead (e.g. a model's own).

    Returns:
        A callable mapping a PIL image to a normalised tensor.

    Raises:
        ValueError: If ``name`` is not a CIFAR dataset.
    """
    from torchvision import transforms

    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'")
    prep = preprocessing or (CIFAR10_PREPROCESSING if name == "cifar10" else CIFAR100_PREPROCESSING)
    steps: list[Any] = []
    if train:
        steps += [
            transforms.RandomCrop(prep.input_size[-1], padding=4),
            transforms.RandomHorizontalFlip(),
        ]
    steps += [transforms.ToTensor(), _normalize(prep)]
    composed: Callable[[Any], Tensor] = transforms.Compose(steps)
    return composed


def imagenet_transforms(
    train: bool, image_size: int = 224, preprocessing: Preprocessing | None = None
) -> Callable[[Any], Tensor]:
    """The original ImageNet transforms for PIL images.

    Training: ``RandomResizedCrop(size)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``Resize(round(size / crop_pct))`` (256 for 224),
    ``CenterCrop(size)``, ``ToTensor()``, ``Normalize``.

    Args:
        train: Whether to use the training augmentation.
        image_size: Output side length (with :data:`IMAGENET_PREPROCESSING`'s constants)
            when ``preprocessing`` is not given.
        preprocessing: Size, crop and normalisation to use instead (e.g. a model's own).

    Returns:
        A callable mapping a PIL image to a normalised ``[3, size, size]`` tensor.

    Raises:
        ValueError: If ``image_size < 1``.
    """
    from torchvision import transforms

    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    prep = preprocessing or Preprocessing(
        (3, image_size, image_size), IMAGENET_MEAN, IMAGENET_STD, "bilinear", 0.875
    )
    mode = transforms.InterpolationMode(prep.interpolation)
    if train:
        steps: list[Any] = [
            transforms.RandomResizedCrop(prep.input_size[-1], interpolation=mode),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        steps = [
            transforms.Resize(round(prep.input_size[-1] / prep.crop_pct), interpolation=mode),
            transforms.CenterCrop(prep.input_size[-1]),
        ]
    steps += [transforms.ToTensor(), _normalize(prep)]
    composed: Callable[[Any], Tensor] = transforms.Compose(steps)
    return composed
