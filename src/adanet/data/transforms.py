"""Image preprocessing: normalisation constants and the originals' transforms.

Mean, std, input size, interpolation and crop ratio of each dataset live in one
:class:`Preprocessing` object (the fields of a model's ``pretrained_cfg``), and the transform
builders read only that object, so a model's own preprocessing can be passed in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

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

# Constants of the original RANet/MSDNet dataloader.py.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4824, 0.4467)
CIFAR10_STD: tuple[float, float, float] = (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4867, 0.4408)
CIFAR100_STD: tuple[float, float, float] = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What an image must look like before it enters a model.

    Attributes:
        input_size: ``(channels, height, width)`` the model receives.
        mean: Per-channel mean subtracted after scaling to ``[0, 1]``.
        std: Per-channel standard deviation divided by.
        interpolation: Resampling used when resizing (``"bilinear"``, ``"bicubic"``, ...).
        crop_pct: Evaluation crop: resize the short side to ``size / crop_pct``, then take
            the centre ``size`` crop (1.0: no resize).
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(
                f"input_size must be (C, H, W) of positive ints, got {self.input_size}"
            )
        if len(self.mean) != self.input_size[0] or len(self.std) != self.input_size[0]:
            raise ValueError(
                f"mean and std need {self.input_size[0]} values (one per channel), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must lie in (0, 1], got {self.crop_pct}")

    @property
    def size(self) -> int:
        """The square side length (``input_size[-1]``)."""
        return self.input_size[-1]

    def normalize(self) -> Callable[[Tensor], Tensor]:
        """torchvision's ``Normalize`` with :attr:`mean` and :attr:`std`."""
        from torchvision import transforms

        normalize: Callable[[Tensor], Tensor] = transforms.Normalize(
            mean=list(self.mean), std=list(self.std)
        )
        return normalize


CIFAR10_PREPROCESSING = Preprocessing((3, 32, 32), CIFAR10_MEAN, CIFAR10_STD)
CIFAR100_PREPROCESSING = Preprocessing((3, 32, 32), CIFAR100_MEAN, CIFAR100_STD)
# 224/256 = 0.875 is the crop ratio of the original evaluation pipeline.
IMAGENET_PREPROCESSING = Preprocessing(
    (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, "bilinear", 0.875
)


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
        steps += [transforms.RandomCrop(prep.size, padding=4), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), prep.normalize()]
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
            transforms.RandomResizedCrop(prep.size, interpolation=mode),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        steps = [
            transforms.Resize(round(prep.size / prep.crop_pct), interpolation=mode),
            transforms.CenterCrop(prep.size),
        ]
    steps += [transforms.ToTensor(), prep.normalize()]
    composed: Callable[[Any], Tensor] = transforms.Compose(steps)
    return composed
