"""What the ``digits`` and ``digits-affine`` datasets share: scikit-learn's bundled digits as
tensors, the checks of the split fractions, and the stratified, seeded split of the digits."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adanet._validation import require_fraction

__all__ = ["check_fractions", "load_digits", "stratified_split"]

_DIGITS_EXTRA_HINT = 'pip install "adanet-torch[digits]"'


def _sklearn(dataset: str) -> Any:
    """scikit-learn, or an ``ImportError`` that says how to install it for ``dataset``."""
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as err:
        raise ImportError(
            f"the {dataset!r} dataset needs scikit-learn; install it with {_DIGITS_EXTRA_HINT}"
        ) from err
    return sklearn


def load_digits(dataset: str) -> tuple[Tensor, Tensor]:
    """All 1,797 grey 8x8 digits as ``[N, 1, 8, 8]`` float32 images in ``[0, 1]`` (the raw
    values 0..16 divided by 16) and their ``[N]`` int64 labels.

    Raises:
        ImportError: scikit-learn is not installed (the message names ``dataset``).
    """
    bunch = _sklearn(dataset).datasets.load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.as_tensor(bunch.target, dtype=torch.int64)


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise unless both shares lie in ``(0, 1)`` and leave some digits for training."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        require_fraction(name, value, low=0, high=1, low_inclusive=False, high_inclusive=False)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
        )


def stratified_split(
    labels: Tensor, val_fraction: float, test_fraction: float, seed: int, dataset: str
) -> tuple[list[int], list[int], list[int]]:
    """Sorted train/val/test indices, stratified by class and seeded: ``round(N *
    test_fraction)`` test and ``round(N * val_fraction)`` validation digits, the rest train."""
    split = _sklearn(dataset).model_selection.train_test_split
    num = int(labels.shape[0])
    # Integer sizes make the split sizes exact and independent of scikit-learn's rounding.
    n_test = round(num * test_fraction)
    n_val = round(num * val_fraction)
    y = labels.numpy()
    trainval_idx, test_idx = split(
        list(range(num)), test_size=n_test, stratify=y, random_state=seed
    )
    train_idx, val_idx = split(
        trainval_idx, test_size=n_val, stratify=y[trainval_idx], random_state=seed
    )
    return (
        sorted(int(i) for i in train_idx),
        sorted(int(i) for i in val_idx),
        sorted(int(i) for i in test_idx),
    )
