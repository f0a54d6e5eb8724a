"""Fixtures of the adanet.data tests: the digits splits and tiny image-folder trees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adanet.data import DataSplits, digits_datasets

ImageTree = Callable[[Path, dict[str, list[str]]], None]


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    """The default digits splits (seed 0), built once per test module."""
    pytest.importorskip("sklearn")
    return digits_datasets(seed=0)


def _write_image_tree(root: Path, classes: dict[str, list[str]], per_class: int = 3) -> None:
    """``root/<split>/<class>/img<i>.png``: ``per_class`` random 40x48 RGB images per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, names in classes.items():
        for cls_name in names:
            d = root / split / cls_name
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"img{i}.png")


@pytest.fixture
def image_tree() -> ImageTree:
    """Writes an ImageFolder tree: ``image_tree(root, {"train": ["cat", "dog"], ...})``."""
    pytest.importorskip("torchvision")
    return _write_image_tree
