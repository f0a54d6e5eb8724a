"""Tests for adanet.data.digits_affine: the transformed-digits task and its random affine maps."""

from __future__ import annotations

import math

import pytest
import torch

from adanet.data import DATASET_NAMES, DataSplits, TransformSubset, build_datasets
from adanet.data.digits_affine import (
    DEFAULT_STRENGTH,
    AffineStrength,
    DigitAffineAugment,
    DigitViews,
    digits_affine_datasets,
    random_affine,
)

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def splits() -> DataSplits:
    return digits_affine_datasets(seed=0)


def _views(dataset: object) -> DigitViews:
    assert isinstance(dataset, DigitViews)
    return dataset


def _train(dataset: object) -> TransformSubset:
    assert isinstance(dataset, TransformSubset)
    return dataset


def test_default_sizes(splits: DataSplits) -> None:
    test, val, train = _views(splits.test), _views(splits.val), _train(splits.train)
    # 1,797 digits: round(0.25 * 1797) = 449 test, round(0.15 * 1797) = 270 validation digits.
    assert len(set(test.digit_ids)) == 449
    assert len(test) == 449 * 12 >= 5000
    assert len(set(val.digit_ids)) == 270
    assert len(val) == 270 * 6
    assert len(train) == 4 * (1797 - 449 - 270)  # every training digit 4 times an epoch
    assert len(set(train.indices)) == 1797 - 449 - 270
    assert (splits.num_classes, splits.image_size, splits.in_channels) == (10, 16, 3)
    image, label = test[0]
    assert image.shape == (3, 16, 16)
    assert isinstance(label, int)
    image, label = train[0]
    assert image.shape == (3, 16, 16)


def test_no_digit_and_no_image_in_two_splits(splits: DataSplits) -> None:
    test, val, train = _views(splits.test), _views(splits.val), _train(splits.train)
    train_ids, val_ids, test_ids = set(train.indices), set(val.digit_ids), set(test.digit_ids)
    assert not train_ids & val_ids
    assert not train_ids & test_ids
    assert not val_ids & test_ids
    assert train_ids | val_ids | test_ids == set(range(1797))
    # The raw 8x8 images of different splits differ too (no duplicate handwriting).
    raw = torch.as_tensor(sklearn_datasets.load_digits().images).flatten(1)
    rows = {tuple(raw[i].tolist()): name for name, ids in
            (("train", train_ids), ("val", val_ids), ("test", test_ids)) for i in ids}  # fmt: skip
    assert len(rows) == 1797
    # And no transformed view is shared by validation and test.
    val_keys = {tuple(v.flatten()[::7].tolist()) for v in val.images}
    assert not any(tuple(t.flatten()[::7].tolist()) in val_keys for t in test.images)


def test_labels_are_the_digits_labels(splits: DataSplits) -> None:
    target = sklearn_datasets.load_digits().target
    for views in (_views(splits.test), _views(splits.val)):
        assert views.targets == [int(target[i]) for i in views.digit_ids]
    train = _train(splits.train)
    assert train.targets == [int(target[i]) for i in train.indices]


def test_views_are_fixed_and_seeded() -> None:
    a = digits_affine_datasets(seed=3, val_views=1, test_views=1)
    b = digits_affine_datasets(seed=3, val_views=1, test_views=1)
    c = digits_affine_datasets(seed=4, val_views=1, test_views=1)
    assert torch.equal(_views(a.test).images, _views(b.test).images)
    assert torch.equal(_views(a.val).images, _views(b.val).images)
    assert _views(a.test).digit_ids != _views(c.test).digit_ids
    # Reading a view twice gives the same image: nothing is drawn at load time.
    assert torch.equal(a.test[5][0], a.test[5][0])


def test_several_distinct_views_per_digit() -> None:
    splits = digits_affine_datasets(val_views=2, test_views=3)
    test = _views(splits.test)
    assert test.digit_ids[:3] == [test.digit_ids[0]] * 3
    assert not torch.equal(test.images[0], test.images[1])
    assert not torch.equal(test.images[1], test.images[2])


def test_training_is_augmented_on_the_fly() -> None:
    splits = digits_affine_datasets(val_views=1, test_views=1, train_repeats=2, image_size=32)
    assert splits.image_size == 32
    train = _train(splits.train)
    assert train[0][0].shape == (3, 32, 32)
    assert len(train) == 2 * (1797 - 449 - 270)
    assert train.indices[: len(train) // 2] == train.indices[len(train) // 2 :]
    assert isinstance(train.transform, DigitAffineAugment)
    torch.manual_seed(0)
    first = train[0][0]
    second = train[0][0]
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(train[0][0], first)


def test_test_set_does_not_depend_on_use_valid() -> None:
    with_val = digits_affine_datasets(val_views=1, test_views=1)
    without = digits_affine_datasets(val_views=1, test_views=1, use_valid=False)
    assert without.val is None
    # The same test digits under the same transforms; only the normalisation (statistics of
    # the training digits) differs.
    assert _views(with_val.test).digit_ids == _views(without.test).digit_ids

    def raw(splits: DataSplits) -> torch.Tensor:
        augment = _train(splits.train).transform
        assert isinstance(augment, DigitAffineAugment)
        return _views(splits.test).images * augment.std + augment.mean

    torch.testing.assert_close(raw(with_val), raw(without), atol=1e-5, rtol=0)
    merged = set(_train(with_val.train).indices) | set(_views(with_val.val).digit_ids)
    assert set(_train(without.train).indices) == merged


def test_training_inputs_are_normalised(splits: DataSplits) -> None:
    torch.manual_seed(0)
    batch = torch.stack([splits.train[i][0] for i in range(0, 1000, 4)])
    assert abs(float(batch.mean())) < 0.1
    assert abs(float(batch.std()) - 1.0) < 0.1


def test_registered_with_build_datasets() -> None:
    assert "digits-affine" in DATASET_NAMES
    splits = build_datasets("Digits-Affine", None, use_valid=True)
    assert len(splits.test) >= 5000
    assert splits.val is not None


def _blob(side: int = 32) -> torch.Tensor:
    """One image: a bright 6x6 square off the centre."""
    image = torch.zeros(1, 1, side, side)
    image[0, 0, 8:14, 10:16] = 1.0
    return image


def _centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    side = images.shape[-1]
    coords = torch.arange(side, dtype=images.dtype)
    mass = images.sum(dim=(1, 2, 3))
    ys = (images.sum(dim=(1, 3)) * coords).sum(dim=1) / mass
    xs = (images.sum(dim=(1, 2)) * coords).sum(dim=1) / mass
    return torch.stack([xs, ys], dim=1)


def test_zero_strength_is_the_identity() -> None:
    images = torch.rand(4, 3, 16, 16)
    out = random_affine(images, AffineStrength(0.0, 0.0, 0.0, 0.0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_shift_moves_the_image_within_its_bound() -> None:
    images = _blob().repeat(200, 1, 1, 1)
    strength = AffineStrength(rotation=0.0, scale=0.0, shift=0.125, noise=0.0)
    moved = random_affine(images, strength, torch.Generator().manual_seed(0))
    offset = _centre_of_mass(moved) - _centre_of_mass(images)
    limit = 0.125 * 32  # 4 pixels per axis
    assert float(offset.abs().max()) <= limit + 0.5
    assert float(offset.abs().max()) >= 0.75 * limit  # it really moves, both ways
    assert float(offset.min()) < -1.0 < 1.0 < float(offset.max())
    # A shift keeps the amount of ink.
    torch.testing.assert_close(
        moved.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=0.02, atol=0
    )


def test_scale_changes_the_area_within_its_bound() -> None:
    images = _blob().repeat(200, 1, 1, 1)
    strength = AffineStrength(rotation=0.0, scale=0.4, shift=0.0, noise=0.0)
    moved = random_affine(images, strength, torch.Generator().manual_seed(1))
    ratio = moved.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    # Area scales with the square of the factor in [0.6, 1.4] (bilinear blur adds a little).
    assert float(ratio.min()) >= 0.6**2 * 0.9
    assert float(ratio.max()) <= 1.4**2 * 1.1
    assert float(ratio.min()) < 0.6 and float(ratio.max()) > 1.5


def test_rotation_keeps_the_centre_and_turns_the_blob() -> None:
    image = torch.zeros(1, 1, 33, 33)
    image[0, 0, 15:18, 4:29] = 1.0  # a horizontal bar through the centre
    images = image.repeat(100, 1, 1, 1)
    strength = AffineStrength(rotation=90.0, scale=0.0, shift=0.0, noise=0.0)
    moved = random_affine(images, strength, torch.Generator().manual_seed(2))
    centre = _centre_of_mass(moved)
    torch.testing.assert_close(centre, torch.full_like(centre, 16.0), atol=0.3, rtol=0)
    # Some bars end up close to vertical: most of their ink in the centre columns.
    column_share = moved[:, 0, :, 14:19].sum(dim=(1, 2)) / moved.sum(dim=(1, 2, 3))
    assert float(column_share.max()) > 0.8
    assert float(column_share.min()) < 0.4


def test_noise_has_the_requested_level() -> None:
    images = torch.full((8, 3, 32, 32), 0.5)
    strength = AffineStrength(rotation=0.0, scale=0.0, shift=0.0, noise=0.05)
    out = random_affine(images, strength, torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # The centre is far from the border, so nothing is clipped there.
    assert math.isclose(float((out - images)[:, :, 4:-4, 4:-4].std()), 0.05, rel_tol=0.05)


def test_default_strength() -> None:
    assert AffineStrength(rotation=35.0, scale=0.25, shift=0.15, noise=0.15) == DEFAULT_STRENGTH


@pytest.mark.parametrize(
    ("field", "value"),
    [("rotation", -1.0), ("rotation", 181.0), ("scale", 1.0), ("shift", 0.6), ("noise", -0.1),
     ("noise", math.nan), ("scale", math.inf)],
)  # fmt: skip
def test_strength_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"AffineStrength.{field}"):
        AffineStrength(**{field: value})


def test_strength_rejects_non_numbers() -> None:
    with pytest.raises(TypeError, match="rotation must be a number"):
        AffineStrength(rotation="20")  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        random_affine(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="floating-point"):
        random_affine(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="test_views"):
        digits_affine_datasets(test_views=0)
    with pytest.raises(ValueError, match="image_size"):
        digits_affine_datasets(image_size=4)
    with pytest.raises(ValueError, match="must be < 1"):
        digits_affine_datasets(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"val_fraction must be a number in \(0, 1\)"):
        digits_affine_datasets(val_fraction=0.0)
    with pytest.raises(TypeError, match="AffineStrength"):
        digits_affine_datasets(strength=(20.0, 0.1, 0.1, 0.05))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="digit ids"):
        DigitViews(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), [0])
