"""Dataset containers and views: splits, index views with their own transforms, hold-outs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from adanet._validation import require_int
from adanet.models.pretrained_cfg import PretrainedCfg

__all__ = [
    "DataLoaders",
    "DataSplits",
    "Sample",
    "TensorImageDataset",
    "TransformSubset",
    "holdout_split",
    "splits_from_base",
]

Sample = tuple[Tensor, int]


@dataclass(frozen=True)
class DataSplits:
    """The datasets of one experiment plus the facts a model needs about them.

    Attributes:
        train: Training set (training augmentation).
        val: Held-out part of the training set with evaluation transforms, or ``None`` when no
            validation split was requested (the original code then calibrates on the test set).
        test: Test set (evaluation transforms); for ImageNet this is the official ``val`` folder.
        num_classes: Number of classes.
        image_size: Side length of the (square) images the model receives.
        in_channels: Number of image channels the model receives.
        preprocessing: The normalisation and size the images were prepared with, for a
            model's ``pretrained_cfg`` and for a saved model directory; ``None`` when the
            builder does not know it.
    """

    train: Dataset[Sample]
    val: Dataset[Sample] | None
    test: Dataset[Sample]
    num_classes: int
    image_size: int
    in_channels: int
    preprocessing: PretrainedCfg | None = None


class DataLoaders(NamedTuple):
    """Train/validation/test loaders; unpacks as ``train, val, test``."""

    train: DataLoader[Sample]
    val: DataLoader[Sample] | None
    test: DataLoader[Sample]


class TransformSubset(Dataset[Sample]):
    """A view of ``base`` restricted to ``indices`` that applies its own ``transform``.

    ``base`` must return *untransformed* ``(image, target)`` pairs (e.g. a torchvision dataset
    built with ``transform=None``), so that several views with different transforms -- training
    augmentation for the training part, deterministic evaluation transforms for the held-out
    part -- can share one copy of the data.

    Args:
        base: Dataset returning ``(image, target)``.
        indices: Indices of ``base`` in this view, or ``None`` for all of them.
        transform: Applied to each image; ``None`` returns the image unchanged.
    """

    def __init__(
        self,
        base: Dataset[tuple[Any, int]],
        indices: Sequence[int] | None = None,
        transform: Callable[[Any], Tensor] | None = None,
    ) -> None:
        self.base = base
        if indices is None:
            # Dataset declares no __len__, but every map-style base used here has one.
            indices = range(len(base))  # type: ignore[arg-type]
        self.indices: list[int] = [int(i) for i in indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        image, target = self.base[self.indices[index]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(target)

    @property
    def targets(self) -> list[int]:
        """Class index of every sample in this view, read without loading any image."""
        base_targets = getattr(self.base, "targets", None)
        if base_targets is None:
            raise AttributeError(f"{type(self.base).__name__} exposes no 'targets' attribute")
        return [int(base_targets[i]) for i in self.indices]


class TensorImageDataset(Dataset[tuple[Tensor, int]]):
    """In-memory images ``[N, C, H, W]`` with integer targets ``[N]``.

    Args:
        images: Image tensor.
        targets: Class indices, one per image.

    Raises:
        ValueError: If the two lengths differ or ``images`` is not 4-D.
    """

    def __init__(self, images: Tensor, targets: Tensor) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
        self.images = images
        self.targets: list[int] = [int(t) for t in targets.tolist()]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], self.targets[index]


def holdout_split(num_samples: int, val_size: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Splits ``range(num_samples)`` into a training part and a held-out part of ``val_size``.

    Like the original ``--use-valid`` code, the held-out part is the last ``val_size`` entries
    of a random permutation; here the permutation comes from a generator seeded with ``seed``
    so the split is reproducible without caching an index file. Both parts are returned sorted.

    Args:
        num_samples: Size of the dataset being split.
        val_size: Number of held-out samples, in ``[1, num_samples)``.
        seed: Seed of the permutation.

    Returns:
        ``(train_indices, val_indices)``, disjoint and covering ``range(num_samples)``.

    Raises:
        TypeError, ValueError: If ``val_size`` is not an int in ``[1, num_samples)``.
    """
    require_int("val_size", val_size, 1)
    if val_size >= num_samples:
        raise ValueError(
            f"val_size must be in [1, {num_samples}) for a dataset of {num_samples} samples, "
            f"got {val_size}"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_samples, generator=generator).tolist()
    return sorted(perm[:-val_size]), sorted(perm[-val_size:])


def splits_from_base(
    train_base: Dataset[tuple[Any, int]],
    test_base: Dataset[tuple[Any, int]],
    preprocessing: PretrainedCfg,
    make_transform: Callable[[bool, PretrainedCfg], Callable[[Any], Tensor]],
    *,
    use_valid: bool,
    val_size: int,
    seed: int,
    num_classes: int,
) -> DataSplits:
    """Builds train/val/test views; the held-out part gets the evaluation transform.

    Args:
        train_base: Untransformed training images (the held-out part is taken from them).
        test_base: Untransformed test images.
        preprocessing: Size and normalisation of the images the model receives.
        make_transform: ``(train, preprocessing) -> transform``: the training transform for
            ``True``, the evaluation one for ``False``.
        use_valid: Hold out ``val_size`` training images as the validation split.
        val_size: Size of the held-out split.
        seed: Seed of the held-out split.
        num_classes: Number of classes.
    """
    train_tf = make_transform(True, preprocessing)
    eval_tf = make_transform(False, preprocessing)
    val: TransformSubset | None = None
    if use_valid:
        train_idx, val_idx = holdout_split(len(train_base), val_size, seed)  # type: ignore[arg-type]
        train = TransformSubset(train_base, train_idx, train_tf)
        val = TransformSubset(train_base, val_idx, eval_tf)
    else:
        train = TransformSubset(train_base, None, train_tf)
    return DataSplits(
        train=train,
        val=val,
        test=TransformSubset(test_base, None, eval_tf),
        num_classes=num_classes,
        image_size=preprocessing.input_size[-1],
        in_channels=preprocessing.input_size[0],
        preprocessing=preprocessing,
    )
