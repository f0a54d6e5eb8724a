"""Datasets, transforms and data loaders for training and evaluating multi-exit networks.

Supported datasets (see :func:`build_datasets` and the table :data:`DATASETS`):

* ``"cifar10"`` / ``"cifar100"`` -- torchvision's CIFAR classes, read from a local folder
  (nothing is downloaded unless ``download=True`` is passed explicitly).
* ``"ImageNet"`` -- torchvision ``ImageFolder`` trees ``<root>/train/<class>/*`` and
  ``<root>/val/<class>/*``.
* ``"digits"`` -- scikit-learn's bundled 8x8 handwritten digits (1,797 images), upsampled to
  32x32 RGB so CIFAR-configured networks run on it unchanged. It needs no download and loads in
  well under a second, which makes it the dataset for smoke tests and examples.
* ``"digits-affine"`` -- the same digits under seeded random rotation, scale, shift and noise
  (:mod:`adanet.data.digits_affine`): a harder task whose exits differ, used by ``make demo``.

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

from adanet.data.catalog import DATASET_NAMES, DATASETS, DatasetInfo, build_datasets, dataset_info
from adanet.data.digits import digits_datasets
from adanet.data.digits_affine import digits_affine_datasets
from adanet.data.loaders import build_loaders
from adanet.data.sources import cifar_datasets, imagenet_datasets
from adanet.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    cifar_transforms,
    imagenet_transforms,
)
from adanet.data.views import (
    DataLoaders,
    DataSplits,
    TensorImageDataset,
    TransformSubset,
    holdout_split,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DATASETS",
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataLoaders",
    "DataSplits",
    "DatasetInfo",
    "TensorImageDataset",
    "TransformSubset",
    "build_datasets",
    "build_loaders",
    "cifar_datasets",
    "cifar_transforms",
    "dataset_info",
    "digits_affine_datasets",
    "digits_datasets",
    "holdout_split",
    "imagenet_datasets",
    "imagenet_transforms",
]
