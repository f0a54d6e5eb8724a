"""Datasets, transforms and data loaders for training and evaluating multi-exit networks.

Supported datasets (see :func:`build_datasets`):

* ``"cifar10"`` / ``"cifar100"`` -- torchvision's CIFAR classes, read from a local folder
  (nothing is downloaded unless ``download=True`` is passed explicitly).
* ``"ImageNet"`` -- torchvision ``ImageFolder`` trees ``<root>/train/<class>/*`` and
  ``<root>/val/<class>/*``.
* ``"digits"`` -- scikit-learn's bundled 8x8 handwritten digits (1,797 images), upsampled to
  32x32 RGB so CIFAR-configured networks run on it unchanged. It needs no download and loads in
  well under a second, which makes it the dataset for smoke tests and examples.

Transforms and normalisation constants follow the original RANet/MSDNet code
(github.com/yangle15/RANet-pytorch, ``dataloader.py``): CIFAR uses random crop with 4 pixels of
padding plus horizontal flips for training; ImageNet uses ``RandomResizedCrop`` + flip for
training and resize-256/center-crop-224 for evaluation.

One deliberate difference: with ``use_valid=True`` the original carves a validation set out of
the training set but keeps applying *training augmentation* to it, so the confidence thresholds
that dynamic evaluation calibrates on it are computed on randomly cropped/flipped images. Here
the held-out part uses the *evaluation* transforms: the training and validation sets are two
index-disjoint views (:class:`TransformSubset`) over one underlying dataset, each with its own
transform. The split itself is a seeded permutation instead of the original's unseeded
``torch.randperm`` cached in ``index.pth``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataLoaders",
    "DataSplits",
    "TensorImageDataset",
    "TransformSubset",
    "build_datasets",
    "build_loaders",
    "cifar_datasets",
    "cifar_transforms",
    "digits_datasets",
    "holdout_split",
    "imagenet_datasets",
    "imagenet_transforms",
]

# Constants of the original RANet/MSDNet dataloader.py.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4824, 0.4467)
CIFAR10_STD: tuple[float, float, float] = (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4867, 0.4408)
CIFAR100_STD: tuple[float, float, float] = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

DATASET_NAMES: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet", "digits", "digits-affine")
"""Names accepted by :func:`build_datasets` (matched case-insensitively)."""

_DIGITS_EXTRA_HINT = 'pip install "adanet-torch[digits]"'

Sample = tuple[Tensor, int]


# --------------------------------------------------------------------------------------------
# Containers and dataset views
# --------------------------------------------------------------------------------------------


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
    """

    train: Dataset[Sample]
    val: Dataset[Sample] | None
    test: Dataset[Sample]
    num_classes: int
    image_size: int
    in_channels: int


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
        ValueError: If ``val_size`` is not in ``[1, num_samples)``.
    """
    if not 0 < val_size < num_samples:
        raise ValueError(
            f"val_size must be in [1, {num_samples}) for a dataset of {num_samples} samples, "
            f"got {val_size}"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_samples, generator=generator).tolist()
    return sorted(perm[:-val_size]), sorted(perm[-val_size:])


def _splits_from_base(
    train_base: Dataset[tuple[Any, int]],
    test_base: Dataset[tuple[Any, int]],
    train_tf: Callable[[Any], Tensor],
    eval_tf: Callable[[Any], Tensor],
    *,
    use_valid: bool,
    val_size: int,
    seed: int,
    num_classes: int,
    image_size: int,
) -> DataSplits:
    """Builds train/val/test views; the held-out part gets the evaluation transform."""
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
        image_size=image_size,
        in_channels=3,
    )


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


def cifar_transforms(
    train: bool, name: Literal["cifar10", "cifar100"] = "cifar10"
) -> Callable[[Any], Tensor]:
    """The original CIFAR transforms for PIL images.

    Training: ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``ToTensor()``, ``Normalize``. The normalisation constants are
    :data:`CIFAR10_MEAN`/:data:`CIFAR10_STD` or :data:`CIFAR100_MEAN`/:data:`CIFAR100_STD`.

    Args:
        train: Whether to include the training augmentation.
        name: Which dataset's normalisation constants to use.

    Returns:
        A callable mapping a PIL image to a normalised ``[3, 32, 32]`` tensor.

    Raises:
        ValueError: If ``name`` is not a CIFAR dataset.
    """
    from torchvision import transforms

    if name == "cifar10":
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    elif name == "cifar100":
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    else:
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'")
    steps: list[Any] = []
    if train:
        steps += [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)]
    composed: Callable[[Any], Tensor] = transforms.Compose(steps)
    return composed


def imagenet_transforms(train: bool, image_size: int = 224) -> Callable[[Any], Tensor]:
    """The original ImageNet transforms for PIL images.

    Training: ``RandomResizedCrop(image_size)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
    ``Normalize``. Evaluation: ``Resize(round(image_size / 0.875))`` (256 for 224),
    ``CenterCrop(image_size)``, ``ToTensor()``, ``Normalize``. Constants:
    :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD`.

    Args:
        train: Whether to use the training augmentation.
        image_size: Output side length.

    Returns:
        A callable mapping a PIL image to a normalised ``[3, image_size, image_size]`` tensor.

    Raises:
        ValueError: If ``image_size < 1``.
    """
    from torchvision import transforms

    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    normalize = transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    if train:
        steps: list[Any] = [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        # 224/256 = 0.875 is the crop ratio of the original evaluation pipeline.
        steps = [transforms.Resize(round(image_size / 0.875)), transforms.CenterCrop(image_size)]
    steps += [transforms.ToTensor(), normalize]
    composed: Callable[[Any], Tensor] = transforms.Compose(steps)
    return composed


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------


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
    return _splits_from_base(
        train_base,
        test_base,
        cifar_transforms(True, name),
        cifar_transforms(False, name),
        use_valid=use_valid,
        val_size=val_size,
        seed=seed,
        num_classes=num_classes,
        image_size=32,
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
    return _splits_from_base(
        train_base,
        test_base,
        imagenet_transforms(True, image_size),
        imagenet_transforms(False, image_size),
        use_valid=use_valid,
        val_size=val_size,
        seed=seed,
        num_classes=len(train_base.classes),
        image_size=image_size,
    )


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------


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
        ValueError: If the fractions are not positive or sum to 1 or more.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError(
            f"the 'digits' dataset needs scikit-learn; install it with {_DIGITS_EXTRA_HINT}"
        ) from err
    from torchvision import transforms

    if not (0.0 < val_fraction < 1.0 and 0.0 < test_fraction < 1.0):
        raise ValueError(
            f"val_fraction and test_fraction must lie in (0, 1), got {val_fraction} and "
            f"{test_fraction}"
        )
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
        )

    bunch = load_digits()
    raw = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    images = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False)
    # Three identical channels: models built for RGB input need no special casing.
    images = images.clamp_(0.0, 1.0).repeat(1, 3, 1, 1).contiguous()
    num = int(labels.shape[0])

    # Integer sizes make the split sizes exact and independent of scikit-learn's rounding.
    n_test = round(num * test_fraction)
    n_val = round(num * val_fraction)
    all_idx = list(range(num))
    y = labels.numpy()
    trainval_idx, test_idx = train_test_split(
        all_idx, test_size=n_test, stratify=y, random_state=seed
    )
    train_idx, val_idx = train_test_split(
        trainval_idx, test_size=n_val, stratify=y[trainval_idx], random_state=seed
    )
    train_idx = sorted(int(i) for i in train_idx)
    val_idx = sorted(int(i) for i in val_idx)
    test_idx = sorted(int(i) for i in test_idx)
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
    )


# --------------------------------------------------------------------------------------------
# Dispatch and loaders
# --------------------------------------------------------------------------------------------


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
    key = name.lower()
    if key == "digits":
        return digits_datasets(seed=seed, use_valid=use_valid)
    if key == "digits-affine":
        from .digits_affine import digits_affine_datasets  # imports this module

        return digits_affine_datasets(seed=seed, use_valid=use_valid)
    if key not in ("cifar10", "cifar100", "imagenet"):
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}")
    if root is None:
        raise ValueError(f"dataset {name!r} needs a data root folder (root=None given)")
    if key == "imagenet":
        return imagenet_datasets(
            root, use_valid=use_valid, val_size=50000 if val_size is None else val_size, seed=seed
        )
    return cifar_datasets(
        "cifar10" if key == "cifar10" else "cifar100",
        root,
        use_valid=use_valid,
        val_size=5000 if val_size is None else val_size,
        download=download,
        seed=seed,
    )


def build_loaders(
    splits: DataSplits,
    batch_size: int,
    workers: int,
    distributed: bool = False,
    seed: int = 0,
    *,
    shard_eval: bool = False,
    pin_memory: bool | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoaders:
    """Wraps the splits in data loaders.

    The training loader shuffles with a generator seeded by ``seed``. With ``workers > 0`` that
    generator also seeds the worker processes' torch RNGs, so the augmentation is repeatable
    too; with ``workers == 0`` augmentation draws from the global torch RNG (seed it with
    :func:`torch.manual_seed`). With ``distributed=True`` it uses a
    :class:`~torch.utils.data.DistributedSampler` instead; call ``loader.sampler.set_epoch(epoch)``
    every epoch so each epoch is shuffled differently. Validation and test loaders keep the
    dataset order. By default they are *not* sharded even when distributed, so every rank
    evaluates the full set and per-sample results (needed for dynamic-evaluation thresholds)
    stay exact; ``shard_eval=True`` shards them with a non-shuffling ``DistributedSampler``,
    which pads the last shard by repeating a few samples.

    Args:
        splits: The datasets.
        batch_size: Per-process batch size.
        workers: Number of loader worker processes (0 loads in the main process).
        distributed: Shard the training set across processes.
        seed: Shuffling seed.
        shard_eval: Also shard validation/test when distributed.
        pin_memory: Pin host memory; defaults to whether CUDA is available.
        num_replicas: Passed to ``DistributedSampler`` (default: the process group's size).
        rank: Passed to ``DistributedSampler`` (default: this process's rank).

    Returns:
        ``DataLoaders(train, val, test)``; ``val`` is ``None`` when ``splits.val`` is.

    Raises:
        ValueError: If ``batch_size < 1`` or ``workers < 0``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": workers,
        "pin_memory": pin,
        "persistent_workers": workers > 0,
    }

    generator = torch.Generator().manual_seed(seed)
    if distributed:
        train_sampler: DistributedSampler[Sample] = DistributedSampler(
            splits.train, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        train = DataLoader(splits.train, sampler=train_sampler, generator=generator, **common)
    else:
        train = DataLoader(splits.train, shuffle=True, generator=generator, **common)

    def eval_loader(dataset: Dataset[Sample]) -> DataLoader[Sample]:
        if distributed and shard_eval:
            sampler: DistributedSampler[Sample] = DistributedSampler(
                dataset, num_replicas=num_replicas, rank=rank, shuffle=False
            )
            return DataLoader(dataset, sampler=sampler, **common)
        return DataLoader(dataset, shuffle=False, **common)

    val = None if splits.val is None else eval_loader(splits.val)
    return DataLoaders(train=train, val=val, test=eval_loader(splits.test))
