"""scikit-learn's bundled handwritten digits as a tiny 32x32 RGB dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from adanet.data._sklearn_digits import check_fractions, load_digits, stratified_split
from adanet.data.views import DataSplits, TensorImageDataset, TransformSubset
from adanet.models.pretrained_cfg import PretrainedCfg

__all__ = ["digit_images", "digits_datasets"]


def digits_datasets(
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    use_valid: bool = True,
) -> DataSplits:
    """scikit-learn's bundled handwritten digits as a tiny 32x32 RGB dataset.

    The 1,797 grey 8x8 images (values 0..16) are scaled to ``[0, 1]``, upsampled to 32x32 with
    bilinear interpolation and repeated to 3 channels, so networks configured for CIFAR run on
    them unchanged. The data is split once, stratified by class and seeded: ``round(1797 *
    test_fraction)`` test images, ``round(1797 * val_fraction)`` validation images, the rest for
    training (359/359/1,079 with the defaults). Images are normalised with the per-channel mean
    and standard deviation of the training images. Training augmentation is a random 32x32 crop
    with 2 pixels of zero (background) padding; there are no flips because digits are not
    mirror-invariant. Validation and test images are only normalised.

    Args:
        seed: Seed of the split (``random_state`` of scikit-learn's ``train_test_split``).
        val_fraction: Fraction of all images held out for validation, in ``(0, 1)``.
        test_fraction: Fraction of all images held out for testing, in ``(0, 1)``.
        use_valid: If false, the validation images are merged into the training set and
            ``val`` is ``None``; the test set is the same either way.

    Returns:
        The splits, with ``num_classes=10``, ``image_size=32``, ``in_channels=3``.

    Raises:
        ImportError: If scikit-learn is not installed.
        TypeError, ValueError: If a fraction is not a number in ``(0, 1)``, or the two sum
            to 1 or more.
    """
    check_fractions(val_fraction, test_fraction)
    from torchvision import transforms

    images, labels = digit_images()
    train_idx, val_idx, test_idx = stratified_split(
        labels, val_fraction, test_fraction, seed, "digits"
    )
    if not use_valid:
        train_idx = sorted(train_idx + val_idx)

    # Statistics of the training images only, so nothing leaks from validation/test.
    train_images = images[train_idx]
    mean = train_images.mean(dim=(0, 2, 3)).tolist()
    std = train_images.std(dim=(0, 2, 3)).tolist()
    normalize = transforms.Normalize(mean=mean, std=std)
    train_tf: Callable[[Any], Tensor] = transforms.Compose(
        [transforms.RandomCrop(32, padding=2), normalize]
    )
    eval_tf: Callable[[Any], Tensor] = normalize

    base = TensorImageDataset(images, labels)
    return DataSplits(
        train=TransformSubset(base, train_idx, train_tf),
        val=TransformSubset(base, val_idx, eval_tf) if use_valid else None,
        test=TransformSubset(base, test_idx, eval_tf),
        num_classes=10,
        image_size=32,
        in_channels=3,
        preprocessing=PretrainedCfg(input_size=(3, 32, 32), mean=tuple(mean), std=tuple(std)),
    )


def digit_images(size: int = 32) -> tuple[Tensor, Tensor]:
    """All 1,797 digits as ``[N, 3, size, size]`` images in ``[0, 1]`` and their labels.

    The grey 8x8 images (values 0..16) are scaled to ``[0, 1]``, upsampled with bilinear
    interpolation and repeated to 3 channels.

    Raises:
        ImportError: If scikit-learn is not installed.
    """
    raw, labels = load_digits("digits")
    images = F.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False)
    # Three identical channels: models built for RGB input need no special casing.
    return images.clamp_(0.0, 1.0).repeat(1, 3, 1, 1).contiguous(), labels
