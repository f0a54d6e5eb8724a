"""adanet.data.digits: the split of scikit-learn's digits, its normalisation and augmentation."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest
import torch

from adanet.data import (
    DataSplits,
    TransformSubset,
    digits_datasets,
)

pytest.importorskip("sklearn")
torchvision = pytest.importorskip("torchvision")


def _indices(ds: Any) -> list[int]:
    assert isinstance(ds, TransformSubset)
    return ds.indices


def test_digits_split_sizes_and_disjointness(digits: DataSplits) -> None:
    assert digits.val is not None
    train, val, test = _indices(digits.train), _indices(digits.val), _indices(digits.test)
    # round(1797 * 0.2) = 359 each for val and test, the remaining 1079 for training.
    assert (len(train), len(val), len(test)) == (1079, 359, 359)
    assert len(digits.train) == 1079
    assert not set(train) & set(val)
    assert not set(train) & set(test)
    assert not set(val) & set(test)
    assert set(train) | set(val) | set(test) == set(range(1797))
    assert (digits.num_classes, digits.image_size, digits.in_channels) == (10, 32, 3)


def test_digits_split_is_seeded(digits: DataSplits) -> None:
    again = digits_datasets(seed=0)
    other = digits_datasets(seed=1)
    assert again.val is not None and other.val is not None and digits.val is not None
    assert _indices(again.train) == _indices(digits.train)
    assert _indices(again.val) == _indices(digits.val)
    assert _indices(other.test) != _indices(digits.test)


def test_digits_split_is_stratified(digits: DataSplits) -> None:
    assert digits.val is not None
    base_counts = Counter(TransformSubset(digits.train.base).targets)  # type: ignore[attr-defined]
    for split, size in [(digits.train, 1079), (digits.val, 359), (digits.test, 359)]:
        counts = Counter(split.targets)  # type: ignore[attr-defined]
        assert set(counts) == set(range(10))
        for cls, n in base_counts.items():
            # Stratified: each class gets its proportional share, up to rounding.
            assert abs(counts[cls] - n * size / 1797) <= 1.0


def test_digits_samples_shape_and_normalisation(digits: DataSplits) -> None:
    assert digits.val is not None
    image, label = digits.val[0]
    assert image.shape == (3, 32, 32)
    assert image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    torch.testing.assert_close(image[0], image[1])  # the three channels are copies
    # The training images seen through the eval transform are standardised.
    val_view = digits.val
    assert isinstance(val_view, TransformSubset)
    train_eval = TransformSubset(val_view.base, _indices(digits.train), val_view.transform)
    stacked = torch.stack([train_eval[i][0] for i in range(len(train_eval))])
    assert stacked.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert stacked.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_eval_deterministic_train_augmented(digits: DataSplits) -> None:
    assert digits.val is not None
    torch.manual_seed(0)
    first = digits.val[3][0]
    torch.manual_seed(1)
    torch.testing.assert_close(digits.val[3][0], first)
    torch.testing.assert_close(digits.test[3][0], digits.test[3][0])
    draws = []
    for s in range(8):
        torch.manual_seed(s)
        draws.append(digits.train[3][0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert all(d.shape == (3, 32, 32) for d in draws)


def test_digits_without_validation() -> None:
    splits = digits_datasets(seed=0, use_valid=False)
    assert splits.val is None
    assert len(splits.train) == 1079 + 359
    assert _indices(splits.test) == _indices(digits_datasets(seed=0).test)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.2, 1.0), (0.5, 0.5), (-0.1, 0.2)])
def test_digits_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        digits_datasets(val_fraction=val, test_fraction=test)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ["sklearn", "sklearn.datasets", "sklearn.model_selection"]:
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r"adanet-torch\[digits\]"):
        digits_datasets()
