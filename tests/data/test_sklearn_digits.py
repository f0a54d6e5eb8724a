"""The scikit-learn side of the digits datasets (adanet.data._sklearn_digits): the raw images
and labels, the share checks, and the seeded, stratified three-way split."""

from __future__ import annotations

import sys

import pytest
import torch

from adanet.data._sklearn_digits import check_fractions, load_digits, stratified_split

pytest.importorskip("sklearn")


def test_all_digits_load_as_unit_range_images() -> None:
    images, labels = load_digits("digits")
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0  # 0..16 divided by 16
    assert sorted(set(labels.tolist())) == list(range(10))
    # Raw values are integers 0..16, so every pixel is a multiple of 1/16.
    assert torch.equal(images * 16, (images * 16).round())


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.0, 0.2, "val_fraction"),
        (0.2, 1.0, "test_fraction"),
        (0.5, 0.5, "val_fraction \\+ test_fraction must be < 1"),
        (True, 0.2, "val_fraction"),
    ],
)
def test_shares_must_leave_digits_to_train_on(val: float, test: float, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        check_fractions(val, test)


def test_the_split_is_exact_disjoint_seeded_and_stratified() -> None:
    labels = torch.arange(10).repeat_interleave(20)  # 200 labels, 20 of each class
    train, val, test = stratified_split(labels, 0.2, 0.3, seed=5, dataset="digits")
    assert (len(train), len(val), len(test)) == (100, 40, 60)
    assert sorted(train + val + test) == list(range(200))
    for part, per_class in ((val, 4), (test, 6)):
        counts = torch.bincount(labels[part], minlength=10)
        assert counts.tolist() == [per_class] * 10
    assert stratified_split(labels, 0.2, 0.3, seed=5, dataset="digits") == (train, val, test)
    assert stratified_split(labels, 0.2, 0.3, seed=6, dataset="digits")[2] != test


def test_without_scikit_learn_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        ImportError, match=r"'digits_affine' dataset needs scikit-learn.*\[digits\]"
    ):
        load_digits("digits_affine")
