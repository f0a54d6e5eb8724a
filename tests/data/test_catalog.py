"""adanet.data.catalog: the dataset table and building datasets by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adanet.data import (
    DATASET_NAMES,
    DATASETS,
    build_datasets,
    dataset_info,
)


def test_build_datasets_dispatch(
    tmp_path: Path, image_tree: Callable[[Path, dict[str, list[str]]], None]
) -> None:
    pytest.importorskip("sklearn")
    splits = build_datasets("digits", None, use_valid=True, seed=0)
    assert splits.num_classes == 10 and splits.val is not None
    with pytest.raises(ValueError, match=r"cifar10.*cifar100.*ImageNet.*digits"):
        build_datasets("mnist", None, use_valid=False)
    with pytest.raises(ValueError, match="root"):
        build_datasets("cifar10", None, use_valid=False)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        build_datasets("cifar100", tmp_path, use_valid=False)
    image_tree(tmp_path, {"train": ["a", "b"], "val": ["a", "b"]})
    for name in ("ImageNet", "imagenet"):
        got = build_datasets(name, tmp_path, use_valid=True, val_size=2)
        assert got.num_classes == 2 and got.val is not None and len(got.val) == 2


def test_dataset_info_is_the_table_entry_by_any_case() -> None:
    assert tuple(DATASETS) == DATASET_NAMES
    assert dataset_info("IMAGENET") is DATASETS["ImageNet"]
    assert (dataset_info("cifar100").num_classes, dataset_info("cifar100").variant) == (
        100,
        "cifar",
    )
    assert [name for name, info in DATASETS.items() if not info.needs_root] == [
        "digits",
        "digits-affine",
    ]
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        dataset_info("mnist")
