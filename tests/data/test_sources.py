"""adanet.data.sources: CIFAR from tiny fake torchvision folders, ImageNet from tiny
ImageFolder trees."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adanet.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TransformSubset,
    cifar_datasets,
    imagenet_datasets,
)

torchvision = pytest.importorskip("torchvision")


def _indices(ds: Any) -> list[int]:
    assert isinstance(ds, TransformSubset)
    return ds.indices


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


def test_imagefolder_loading(
    tmp_path: Path, image_tree: Callable[[Path, dict[str, list[str]]], None]
) -> None:
    image_tree(tmp_path, {"train": ["cat", "dog"], "val": ["cat", "dog"]})
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


def test_imagefolder_errors(
    tmp_path: Path, image_tree: Callable[[Path, dict[str, list[str]]], None]
) -> None:
    with pytest.raises(FileNotFoundError, match="train"):
        imagenet_datasets(tmp_path, use_valid=False)
    image_tree(tmp_path, {"train": ["cat", "dog"]})
    with pytest.raises(FileNotFoundError, match=r"val.*<class_name>"):
        imagenet_datasets(tmp_path, use_valid=False)
    image_tree(tmp_path, {"val": ["cat", "emu"]})
    with pytest.raises(ValueError, match="same class folders"):
        imagenet_datasets(tmp_path, use_valid=False)
