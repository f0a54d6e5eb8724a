"""CIFAR-10/100 and ImageNet (``ImageFolder``) datasets with the originals' transforms."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from adanet.data.transforms import cifar_transforms, imagenet_transforms
from adanet.data.views import DataSplits, splits_from_base
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG

__all__ = ["cifar_datasets", "imagenet_datasets"]


def cifar_datasets(
    name: Literal["cifar10", "cifar100"],
    root: str | Path,
    *,
    use_valid: bool,
    val_size: int = 5000,
    download: bool = False,
    seed: int = 0,
) -> DataSplits:
    """CIFAR-10/100 from torchvision, with an optional held-out validation split.

    The data is read from ``<root>/cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``, ``batches.meta``) or ``<root>/cifar-100-python/`` (``train``, ``test``,
    ``meta``), i.e. the official tarball extracted into ``root``. torchvision verifies the MD5
    checksums of these files.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: Folder containing the extracted dataset folder.
        use_valid: Hold out ``val_size`` training images (with evaluation transforms) as the
            validation set; otherwise ``val`` is ``None`` and all 50,000 images train.
        val_size: Size of the held-out split (5,000 in the original).
        download: Let torchvision download the tarball if it is missing (needs internet).
        seed: Seed of the held-out split.

    Returns:
        The splits, with ``image_size=32`` and ``in_channels=3``.

    Raises:
        FileNotFoundError: If the dataset files are missing and ``download`` is false.
        RuntimeError: If torchvision rejects the files (failed checksum).
        ValueError: On an unknown ``name`` or invalid ``val_size``.
    """
    from torchvision import datasets

    if name == "cifar10":
        cls: Any = datasets.CIFAR10
        pretty, num_classes = "CIFAR-10", 10
    elif name == "cifar100":
        cls = datasets.CIFAR100
        pretty, num_classes = "CIFAR-100", 100
    else:
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'")

    root = Path(root).expanduser()
    folder = root / cls.base_folder
    expected = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{pretty} not found: expected the folder '{folder}' containing "
            f"{', '.join(expected)}. Download {cls.filename} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it into '{root}' "
            f"(e.g. `tar -xzf {cls.filename} -C {root}`), or pass download=True. "
            f"Missing: {', '.join(missing)}."
        )
    try:
        train_base = cls(str(root), train=True, transform=None, download=download)
        test_base = cls(str(root), train=False, transform=None, download=False)
    except RuntimeError as err:
        raise RuntimeError(
            f"torchvision rejected the {pretty} files in '{folder}' ({err}); they are probably "
            f"truncated or not the official release. Re-extract {cls.filename} there."
        ) from err
    prep = CIFAR10_CFG if name == "cifar10" else CIFAR100_CFG
    return splits_from_base(
        train_base,
        test_base,
        prep,
        lambda train, prep: cifar_transforms(train, preprocessing=prep),
        use_valid=use_valid,
        val_size=val_size,
        seed=seed,
        num_classes=num_classes,
    )


# --------------------------------------------------------------------------------------------
# ImageNet
# --------------------------------------------------------------------------------------------


def imagenet_datasets(
    root: str | Path,
    *,
    use_valid: bool,
    val_size: int = 50000,
    seed: int = 0,
    image_size: int = 224,
) -> DataSplits:
    """ImageNet (or any class-per-folder image dataset) via torchvision ``ImageFolder``.

    Expected layout: ``<root>/train/<class_name>/<image>`` and ``<root>/val/<class_name>/<image>``
    with the same class folders in both (the official validation images must first be sorted
    into class folders). Classes are indexed in sorted folder-name order.

    Args:
        root: Dataset root containing ``train`` and ``val``.
        use_valid: Hold out ``val_size`` training images (with evaluation transforms) as the
            validation set; the official ``val`` folder is always the test set.
        val_size: Size of the held-out split (50,000 in the original).
        seed: Seed of the held-out split.
        image_size: Side length after cropping.

    Returns:
        The splits, with ``in_channels=3``.

    Raises:
        FileNotFoundError: If ``root/train`` or ``root/val`` is missing or holds no images.
        ValueError: If the two folders have different classes, or ``val_size`` is invalid.
    """
    from torchvision import datasets

    root = Path(root).expanduser()
    dirs = {split: root / split for split in ("train", "val")}
    for split, path in dirs.items():
        if not path.is_dir():
            raise FileNotFoundError(
                f"ImageNet {split} folder not found: expected '{path}' laid out as "
                f"'{path}/<class_name>/<image>' (ImageFolder format, one sub-folder per class, "
                f"same class folders in '{root / 'train'}' and '{root / 'val'}')."
            )
    train_base = datasets.ImageFolder(str(dirs["train"]))
    test_base = datasets.ImageFolder(str(dirs["val"]))
    if train_base.classes != test_base.classes:
        only_train = sorted(set(train_base.classes) - set(test_base.classes))
        only_val = sorted(set(test_base.classes) - set(train_base.classes))
        # Labels are folder positions, so differing class sets would silently mislabel images.
        raise ValueError(
            f"'{dirs['train']}' and '{dirs['val']}' must contain the same class folders; "
            f"only in train: {only_train[:5]}, only in val: {only_val[:5]}"
        )
    prep = dataclasses.replace(IMAGENET_CFG, input_size=(3, image_size, image_size))
    return splits_from_base(
        train_base,
        test_base,
        prep,
        lambda train, prep: imagenet_transforms(train, preprocessing=prep),
        use_valid=use_valid,
        val_size=val_size,
        seed=seed,
        num_classes=len(train_base.classes),
    )
