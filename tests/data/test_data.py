"""Tests for adanet.data on in-memory digits and tiny fake CIFAR / ImageFolder trees."""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adanet.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataSplits,
    TransformSubset,
    build_datasets,
    build_loaders,
    cifar_datasets,
    digits_datasets,
    holdout_split,
    imagenet_datasets,
)

pytest.importorskip("sklearn")
torchvision = pytest.importorskip("torchvision")


def _indices(ds: Any) -> list[int]:
    assert isinstance(ds, TransformSubset)
    return ds.indices


# ------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return digits_datasets(seed=0)


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


# ------------------------------------------------------------------------------ holdout


def test_holdout_split() -> None:
    train, val = holdout_split(100, 10, seed=3)
    assert len(train) == 90 and len(val) == 10
    assert sorted(train + val) == list(range(100))
    assert holdout_split(100, 10, seed=3) == (train, val)
    assert holdout_split(100, 10, seed=4) != (train, val)
    for bad in (0, 100, 101):
        with pytest.raises(ValueError, match="val_size"):
            holdout_split(100, bad)


# ------------------------------------------------------------------------------ CIFAR


def _write_pickle(path: Path, obj: dict[str, Any]) -> str:
    with path.open("wb") as fh:
        pickle.dump(obj, fh)
    return hashlib.md5(path.read_bytes()).hexdigest()


FakeCifar = tuple[list[list[str]], list[list[str]], dict[str, str], dict[str, Any]]


def _fake_cifar(root: Path, name: str, per_batch: int = 4) -> FakeCifar:
    """Writes a tiny CIFAR folder in torchvision's pickle layout.

    torchvision verifies each file against the MD5 of the official release, which a fake file
    cannot match. The test therefore patches the class attributes that hold the expected
    checksums (``train_list``, ``test_list``, ``meta``) with the MD5s of the files written here,
    so torchvision's real loading and integrity-checking code still runs.

    Returns:
        ``(test_list, train_list, meta, test_batch)``: replacement values for the class
        attributes, and the raw test batch (uint8 rows of 3072 pixels plus labels).
    """
    rng = np.random.default_rng(0)
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    num_classes = 10 if name == "cifar10" else 100

    def batch(n: int) -> dict[str, Any]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        return {"data": data, label_key: [int(v) for v in rng.integers(0, num_classes, n)]}

    train_files = [f for f, _ in cls.train_list]
    train_list = [
        [f, _write_pickle(folder / f, batch(per_batch * 5 // len(train_files)))]
        for f in train_files
    ]
    test_name = cls.test_list[0][0]
    test_batch = batch(per_batch)
    test_list = [[test_name, _write_pickle(folder / test_name, test_batch)]]
    meta_key = cls.meta["key"]
    meta_md5 = _write_pickle(
        folder / cls.meta["filename"], {meta_key: [f"c{i}" for i in range(num_classes)]}
    )
    return test_list, train_list, {**cls.meta, "md5": meta_md5}, test_batch


@pytest.fixture(params=["cifar10", "cifar100"])
def fake_cifar(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path, dict[str, Any]]:
    name: str = request.param
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    test_list, train_list, meta, test_batch = _fake_cifar(tmp_path, name)
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", meta)
    return name, tmp_path, test_batch


def test_cifar_loads_fake_folder(fake_cifar: tuple[str, Path, dict[str, Any]]) -> None:
    name, root, test_batch = fake_cifar
    splits = cifar_datasets(name, root, use_valid=False)  # type: ignore[arg-type]
    assert splits.val is None
    assert len(splits.train) == 20 and len(splits.test) == 4
    assert splits.num_classes == (10 if name == "cifar10" else 100)
    assert (splits.image_size, splits.in_channels) == (32, 3)
    image, label = splits.test[1]
    label_key = "labels" if name == "cifar10" else "fine_labels"
    assert label == test_batch[label_key][1]
    if name == "cifar10":
        # Eval transform by hand: pixel / 255, then (x - mean) / std per channel.
        raw = torch.from_numpy(test_batch["data"][1].reshape(3, 32, 32).astype(np.float32))
        mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
        torch.testing.assert_close(image, (raw / 255.0 - mean) / std)


def test_cifar_use_valid_uses_eval_transform(
    fake_cifar: tuple[str, Path, dict[str, Any]],
) -> None:
    name, root, _ = fake_cifar
    splits = cifar_datasets(name, root, use_valid=True, val_size=5, seed=0)  # type: ignore[arg-type]
    assert splits.val is not None
    train_idx, val_idx = _indices(splits.train), _indices(splits.val)
    assert (len(train_idx), len(val_idx)) == (15, 5)
    assert not set(train_idx) & set(val_idx)
    # Held-out images are deterministic and equal the eval view of the same training images.
    torch.manual_seed(0)
    a = splits.val[0][0]
    torch.manual_seed(1)
    torch.testing.assert_close(splits.val[0][0], a)
    val_view = splits.val
    assert isinstance(val_view, TransformSubset)
    train_view = splits.train
    assert isinstance(train_view, TransformSubset)
    assert val_view.base is train_view.base  # one copy of the data, two transforms
    draws = []
    for s in range(10):
        torch.manual_seed(s)
        draws.append(splits.train[0][0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    with pytest.raises(ValueError, match="val_size"):
        cifar_datasets(name, root, use_valid=True, val_size=20)  # type: ignore[arg-type]


def test_cifar_checksum_mismatch_is_reported(tmp_path: Path) -> None:
    # Fake files with the *official* checksums left in place: torchvision rejects them.
    _fake_cifar(tmp_path, "cifar10")
    with pytest.raises(RuntimeError, match="rejected"):
        cifar_datasets("cifar10", tmp_path, use_valid=False)


@pytest.mark.parametrize(
    ("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_cifar_missing_folder_message(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(FileNotFoundError) as info:
        cifar_datasets(name, tmp_path, use_valid=False)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(tmp_path / folder) in message
    assert "download=True" in message
    assert "tar.gz" in message


# ------------------------------------------------------------------------------ ImageFolder


def _fake_image_tree(root: Path, classes: dict[str, list[str]], per_class: int = 3) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, names in classes.items():
        for cls_name in names:
            d = root / split / cls_name
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"img{i}.png")


def test_imagefolder_loading(tmp_path: Path) -> None:
    _fake_image_tree(tmp_path, {"train": ["cat", "dog"], "val": ["cat", "dog"]})
    splits = imagenet_datasets(tmp_path, use_valid=False, image_size=32)
    assert (splits.num_classes, splits.image_size, splits.in_channels) == (2, 32, 3)
    assert len(splits.train) == 6 and len(splits.test) == 6 and splits.val is None
    image, label = splits.test[5]
    assert image.shape == (3, 32, 32) and label == 1  # sorted folders: cat=0, dog=1
    assert splits.train[0][0].shape == (3, 32, 32)

    held = imagenet_datasets(tmp_path, use_valid=True, val_size=2, image_size=32)
    assert held.val is not None
    assert len(held.train) == 4 and len(held.val) == 2
    torch.manual_seed(0)
    a = held.val[0][0]
    torch.manual_seed(1)
    torch.testing.assert_close(held.val[0][0], a)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train"):
        imagenet_datasets(tmp_path, use_valid=False)
    _fake_image_tree(tmp_path, {"train": ["cat", "dog"]})
    with pytest.raises(FileNotFoundError, match=r"val.*<class_name>"):
        imagenet_datasets(tmp_path, use_valid=False)
    _fake_image_tree(tmp_path, {"val": ["cat", "emu"]})
    with pytest.raises(ValueError, match="same class folders"):
        imagenet_datasets(tmp_path, use_valid=False)


# ------------------------------------------------------------------------------ dispatch


def test_build_datasets_dispatch(tmp_path: Path) -> None:
    splits = build_datasets("digits", None, use_valid=True, seed=0)
    assert splits.num_classes == 10 and splits.val is not None
    with pytest.raises(ValueError, match=r"cifar10.*cifar100.*ImageNet.*digits"):
        build_datasets("mnist", None, use_valid=False)
    with pytest.raises(ValueError, match="root"):
        build_datasets("cifar10", None, use_valid=False)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        build_datasets("cifar100", tmp_path, use_valid=False)
    _fake_image_tree(tmp_path, {"train": ["a", "b"], "val": ["a", "b"]})
    for name in ("ImageNet", "imagenet"):
        got = build_datasets(name, tmp_path, use_valid=True, val_size=2)
        assert got.num_classes == 2 and got.val is not None and len(got.val) == 2


def test_build_loaders(digits: DataSplits) -> None:
    loaders = build_loaders(digits, batch_size=64, workers=0, seed=0)
    train, val, test = loaders
    assert val is not None
    x, y = next(iter(train))
    assert x.shape == (64, 3, 32, 32) and y.shape == (64,) and y.dtype == torch.int64
    assert len(val.dataset) == 359  # type: ignore[arg-type]
    # Evaluation order is the dataset order.
    xs, ys = next(iter(test))
    torch.testing.assert_close(xs[0], digits.test[0][0])
    assert int(ys[0]) == digits.test[0][1]
    # The seeded generator makes the shuffling repeatable.
    order_a = next(iter(build_loaders(digits, 64, 0, seed=5).train))[1]
    order_b = next(iter(build_loaders(digits, 64, 0, seed=5).train))[1]
    torch.testing.assert_close(order_a, order_b)


def test_build_loaders_workers_repeatable(digits: DataSplits) -> None:
    # With worker processes the seeded generator also fixes the augmentation.
    first = [next(iter(build_loaders(digits, 64, 2, seed=7).train)) for _ in range(2)]
    torch.testing.assert_close(first[0][0], first[1][0])
    torch.testing.assert_close(first[0][1], first[1][1])


def test_build_loaders_distributed(digits: DataSplits) -> None:
    loaders = build_loaders(digits, 32, 0, distributed=True, num_replicas=2, rank=1)
    sampler = loaders.train.sampler
    assert isinstance(sampler, torch.utils.data.DistributedSampler)
    assert len(sampler) == 540  # ceil(1079 / 2)
    assert loaders.val is not None and len(loaders.val.sampler) == 359  # type: ignore[arg-type]
    sharded = build_loaders(
        digits, 32, 0, distributed=True, num_replicas=2, rank=1, shard_eval=True
    )
    assert sharded.val is not None and len(sharded.val.sampler) == 180  # type: ignore[arg-type]


def test_build_loaders_errors_and_missing_val() -> None:
    splits = digits_datasets(use_valid=False)
    assert build_loaders(splits, 8, 0).val is None
    with pytest.raises(ValueError, match="batch_size"):
        build_loaders(splits, 0, 0)
    with pytest.raises(ValueError, match="workers"):
        build_loaders(splits, 8, -1)
