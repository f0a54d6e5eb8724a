"""adanet.data.views: the seeded hold-out split, index views with their own transforms, and
in-memory image datasets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from adanet.data import (
    TransformSubset,
    holdout_split,
)
from adanet.data.views import TensorImageDataset, splits_from_base
from adanet.models.pretrained_cfg import PretrainedCfg


def test_holdout_split() -> None:
    train, val = holdout_split(100, 10, seed=3)
    assert len(train) == 90 and len(val) == 10
    assert sorted(train + val) == list(range(100))
    assert holdout_split(100, 10, seed=3) == (train, val)
    assert holdout_split(100, 10, seed=4) != (train, val)
    for bad in (0, 100, 101):
        with pytest.raises(ValueError, match="val_size"):
            holdout_split(100, bad)


def test_transform_subset_applies_its_transform_to_its_indices_only() -> None:
    base = TensorImageDataset(torch.arange(4.0).view(4, 1, 1, 1), torch.tensor([3, 1, 2, 0]))
    view = TransformSubset(base, [2, 0], transform=lambda image: image * 10)
    assert len(view) == 2 and view.targets == [2, 3]
    image, target = view[0]
    assert image.item() == 20.0 and target == 2
    assert [t for _, t in TransformSubset(base)] == [3, 1, 2, 0]


def test_transform_subset_targets_need_a_base_with_targets() -> None:
    with pytest.raises(AttributeError, match="no 'targets'"):
        _ = TransformSubset([(torch.zeros(1), 0)]).targets  # type: ignore[arg-type]


def test_tensor_image_dataset_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        TensorImageDataset(torch.zeros(2, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="3 images but 2 targets"):
        TensorImageDataset(torch.zeros(3, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_splits_from_base_holds_out_with_the_evaluation_transform() -> None:
    train_base = TensorImageDataset(torch.zeros(10, 1, 4, 4), torch.arange(10) % 2)
    test_base = TensorImageDataset(torch.ones(3, 1, 4, 4), torch.zeros(3, dtype=torch.long))
    prep = PretrainedCfg(input_size=(1, 4, 4), mean=(0.0,), std=(1.0,))
    made: list[bool] = []

    def make_transform(train: bool, given: PretrainedCfg) -> Callable[[Any], torch.Tensor]:
        assert given is prep
        made.append(train)
        return lambda image: image + (1.0 if train else 2.0)

    splits = splits_from_base(
        train_base,
        test_base,
        prep,
        make_transform,
        use_valid=True,
        val_size=4,
        seed=0,
        num_classes=2,
    )
    assert made == [True, False] and splits.preprocessing is prep
    assert (splits.image_size, splits.in_channels, splits.num_classes) == (4, 1, 2)
    assert splits.val is not None and (len(splits.train), len(splits.val)) == (6, 4)
    assert splits.train[0][0].max().item() == 1.0 and splits.val[0][0].max().item() == 2.0
    assert splits.test[0][0].max().item() == 3.0
    whole = splits_from_base(
        train_base,
        test_base,
        prep,
        make_transform,
        use_valid=False,
        val_size=4,
        seed=0,
        num_classes=2,
    )
    assert whole.val is None and len(whole.train) == 10
