"""Image preprocessing: normalisation constants and the originals' transforms.

Mean, std, input size, interpolation and crop ratio of each dataset live in one
:class:`~adanet.models.PretrainedCfg` (what a model carries as ``pretrained_cfg``), and the
transform builders read only that object, so a model's own preprocessing can be passed in its
place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor

from adanet._validation import require_choice, require_int
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
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


def _normalize(prep: PretrainedCfg) -> Callable[[Tensor], Tensor]:
    """torchvision's ``Normalize`` with the preprocessing's mean and std."""
    from torchvision import transforms

    normalize: Callable[[Tensor], Tensor] = transforms.Normalize(
        mean=list(prep.mean), std=list(prep.std)
    )
    return normalize


def cifar_transforms(
    train: bool,
    name: Literal["cifar10", "cifar100"] = "cifar10",
    preprocessing: PretrainedCfg | None = None,
) -> Callable[[Any], Tensor]:
    """The original CIFAR transforms for PIL images.

    Training: ``RandomCrop(size, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``ToTensor()``, ``Normalize``.

    Args:
        train: Whether to include the training augmentation.
        name: Which dataset's constants to use (``adanet.models.pretrained_cfg``'s
            ``CIFAR10_CFG`` or ``CIFAR100_CFG``) when ``preprocessing`` is not given.
        preprocessing: Size and normalisation to use instead (e.g. a model's own).

    Returns:
        A callable mapping a PIL image to a normalised tensor.

    Raises:
        ValueError: If ``name`` is not a CIFAR dataset.
    """
    from torchvision import transforms

    require_choice("name", name, ("cifar10", "cifar100"))
    prep = preprocessing or (CIFAR10_CFG if name == "cifar10" else CIFAR100_CFG)
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
    train: bool, image_size: int = 224, preprocessing: PretrainedCfg | None = None
) -> Callable[[Any], Tensor]:
    """The original ImageNet transforms for PIL images.

    Training: ``RandomResizedCrop(size)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``Resize(round(size / crop_pct))`` (256 for 224),
    ``CenterCrop(size)``, ``ToTensor()``, ``Normalize``.

    Args:
        train: Whether to use the training augmentation.
        image_size: Output side length (with ``IMAGENET_CFG``'s statistics and crop) when
            ``preprocessing`` is not given.
        preprocessing: Size, crop and normalisation to use instead (e.g. a model's own).

    Returns:
        A callable mapping a PIL image to a normalised ``[3, size, size]`` tensor.

    Raises:
        TypeError, ValueError: If ``image_size`` is not an int >= 1.
    """
    from torchvision import transforms

    require_int("image_size", image_size, 1)
    prep = preprocessing or dataclasses.replace(
        IMAGENET_CFG, input_size=(3, image_size, image_size)
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
