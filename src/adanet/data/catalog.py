"""The dataset table: every dataset adanet can build, by name, and what a model needs to know
about it. Adding a dataset is one entry in :data:`DATASETS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adanet.data.digits import digits_datasets
from adanet.data.digits_affine import digits_affine_datasets
from adanet.data.sources import cifar_datasets, imagenet_datasets
from adanet.data.views import DataSplits

__all__ = ["DATASETS", "DATASET_NAMES", "DatasetInfo", "build_datasets", "dataset_info"]

Builder = Callable[[Path | None, bool, int, bool, int | None], DataSplits]
"""``(root, use_valid, seed, download, val_size) -> splits``."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset adanet can build.

    Attributes:
        name: Its name (``--data``).
        num_classes: Classes of its labels.
        variant: Stem and head of the originals' networks for it (``"cifar"``: 3x3 stem for
            small images; ``"imagenet"``: 7x7/2 stem with max-pool).
        needs_root: Whether it is read from a folder (``--data-root``).
        build: Makes its splits.
    """

    name: str
    num_classes: int
    variant: Literal["cifar", "imagenet"]
    needs_root: bool
    build: Builder


def _cifar(name: Literal["cifar10", "cifar100"]) -> Builder:
    def build(
        root: Path | None, use_valid: bool, seed: int, download: bool, val_size: int | None
    ) -> DataSplits:
        assert root is not None  # build_datasets checks needs_root
        size = 5000 if val_size is None else val_size
        return cifar_datasets(
            name, root, use_valid=use_valid, val_size=size, download=download, seed=seed
        )

    return build


def _imagenet(
    root: Path | None, use_valid: bool, seed: int, download: bool, val_size: int | None
) -> DataSplits:
    assert root is not None  # build_datasets checks needs_root
    size = 50000 if val_size is None else val_size
    return imagenet_datasets(root, use_valid=use_valid, val_size=size, seed=seed)


def _digits(
    root: Path | None, use_valid: bool, seed: int, download: bool, val_size: int | None
) -> DataSplits:
    return digits_datasets(seed=seed, use_valid=use_valid)


def _digits_affine(
    root: Path | None, use_valid: bool, seed: int, download: bool, val_size: int | None
) -> DataSplits:
    return digits_affine_datasets(seed=seed, use_valid=use_valid)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", 10, "cifar", True, _cifar("cifar10")),
        DatasetInfo("cifar100", 100, "cifar", True, _cifar("cifar100")),
        DatasetInfo("ImageNet", 1000, "imagenet", True, _imagenet),
        DatasetInfo("digits", 10, "cifar", False, _digits),
        DatasetInfo("digits-affine", 10, "cifar", False, _digits_affine),
    )
}
"""Every dataset by name (the spelling of the originals' ``--data``)."""

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
"""Names accepted by :func:`build_datasets` (matched case-insensitively)."""


def dataset_info(name: str) -> DatasetInfo:
    """The entry of :data:`DATASETS` called ``name`` (case-insensitive).

    Raises:
        ValueError: An unknown name.
    """
    for key, info in DATASETS.items():
        if key.lower() == name.lower():
            return info
    raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}")


def build_datasets(
    name: str,
    root: str | Path | None,
    *,
    use_valid: bool,
    seed: int = 0,
    download: bool = False,
    val_size: int | None = None,
) -> DataSplits:
    """Builds the splits of a dataset by name.

    Args:
        name: One of :data:`DATASET_NAMES` (case-insensitive: ``"imagenet"`` works too).
        root: Data folder; required for CIFAR and ImageNet, ignored for ``"digits"``.
        use_valid: Whether to hold out a validation split of the training data.
        seed: Seed of the held-out split.
        download: Passed to :func:`cifar_datasets`; ignored otherwise.
        val_size: Size of the held-out split (defaults: 5,000 for CIFAR, 50,000 for ImageNet);
            ignored for ``"digits"``, which uses fractions (see :func:`digits_datasets`).

    Returns:
        The dataset splits.

    Raises:
        ValueError: If ``name`` is unknown, or ``root`` is ``None`` for a dataset that needs it.
    """
    info = dataset_info(name)
    if info.needs_root and root is None:
        raise ValueError(f"dataset {name!r} needs a data root folder (root=None given)")
    folder = Path(root) if root is not None else None
    return info.build(folder, use_valid, seed, download, val_size)
