"""``digits-affine``: scikit-learn's handwritten digits under random affine transforms.

The plain ``digits`` task is too easy to show early exit: every exit of a small network is
near 99%, and its 359 test images make one image worth 0.28 points. This task keeps the same
real handwriting but rotates, scales and shifts every digit at random and adds light pixel
noise, so a small network's early exits are measurably worse than its last one, and it shows
every held-out digit several times so the test set is large enough for tight confidence
intervals.

* The 1,797 digits are split once, stratified by class and seeded, into training, validation
  and test *digits*; a digit (and so every image made from it) belongs to exactly one split.
* Training draws a fresh random transform every time an image is loaded (on-the-fly
  augmentation from torch's global RNG, or the loader workers' seeded RNGs).
* Validation and test are *fixed* views: each held-out digit is transformed ``val_views`` /
  ``test_views`` times with a generator seeded from ``seed``, once, when the splits are built.
  With the defaults the test set has 449 digits x 12 views = 5,388 images.

Each digit is first upsampled from 8x8 to 3/4 of the image side and centred on an empty
canvas, so that rotating and enlarging it rarely pushes strokes out of the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from adanet._validation import require_fraction, require_int
from adanet.data._sklearn_digits import check_fractions, load_digits, stratified_split
from adanet.data.views import DataSplits, TensorImageDataset, TransformSubset
from adanet.models.pretrained_cfg import PretrainedCfg

__all__ = [
    "DEFAULT_STRENGTH",
    "AffineStrength",
    "DigitAffineAugment",
    "DigitViews",
    "digits_affine_datasets",
    "random_affine",
]

# Share of the canvas side the untransformed digit occupies (the rest is margin for the
# transforms to move the strokes into).
_CANVAS_FILL = 0.75
# Salts that give the validation views, the test views and the normalisation statistics
# their own random streams for one seed (so e.g. the test set does not depend on use_valid).
_SALT_TEST = 0x7E57
_SALT_VAL = 0x0A11
_SALT_STATS = 0x57A7


@dataclass(frozen=True)
class AffineStrength:
    """How strongly ``digits-affine`` transforms its digits; every parameter is drawn uniformly.

    Attributes:
        rotation: Largest rotation in degrees; the angle is drawn from ``[-rotation, rotation]``.
        scale: Largest relative change of size; the factor is drawn from
            ``[1 - scale, 1 + scale]``.
        shift: Largest shift per axis as a fraction of the image side, drawn from
            ``[-shift, shift]`` independently for x and y.
        noise: Standard deviation of Gaussian pixel noise added to images in ``[0, 1]``
            (the result is clipped to ``[0, 1]``).

    Raises:
        TypeError: If a value is not a number.
        ValueError: If a value is not finite or out of range (``rotation`` in ``[0, 180]``,
            ``scale`` in ``[0, 1)``, ``shift`` in ``[0, 0.5]``, ``noise >= 0``).
    """

    rotation: float = 35.0
    scale: float = 0.25
    shift: float = 0.15
    noise: float = 0.15

    def __post_init__(self) -> None:
        limits = {
            "rotation": (0.0, 180.0, True),
            "scale": (0.0, 1.0, False),
            "shift": (0.0, 0.5, True),
            "noise": (0.0, math.inf, False),
        }
        for name, (low, high, closed) in limits.items():
            require_fraction(
                f"AffineStrength.{name}",
                getattr(self, name),
                low=low,
                high=high,
                low_inclusive=True,
                high_inclusive=closed,
            )


DEFAULT_STRENGTH = AffineStrength()
"""The strength of ``--data digits-affine``: up to ±35°, ±25% size, ±15% shift, noise 0.15."""


def _uniform(n: int, limit: float, generator: torch.Generator | None) -> Tensor:
    """``n`` values drawn uniformly from ``[-limit, limit]`` (float64)."""
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * limit


def random_affine(
    images: Tensor,
    strength: AffineStrength = DEFAULT_STRENGTH,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Each image under its own random rotation, scaling and shift, plus noise.

    The transform is applied about the image centre with bilinear resampling; pixels that come
    from outside the image are background (0). Random numbers come from ``generator``, or from
    torch's global RNG when it is ``None``.

    Args:
        images: ``[N, C, H, W]`` floating-point images with values in ``[0, 1]``.
        strength: The largest rotation, scale change, shift and the noise level.
        generator: Source of randomness.

    Returns:
        ``[N, C, H, W]`` transformed images in ``[0, 1]``.

    Raises:
        ValueError: If ``images`` is not a 4-D floating-point tensor.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a floating-point [N, C, H, W] tensor, got {shape}")
    n = images.shape[0]
    angle = torch.deg2rad(_uniform(n, strength.rotation, generator))
    factor = 1.0 + _uniform(n, strength.scale, generator)
    # affine_grid works in coordinates spanning [-1, 1], so a shift of a fraction t of the
    # side is 2t there.
    shift = torch.stack(
        [
            _uniform(n, 2.0 * strength.shift, generator),
            _uniform(n, 2.0 * strength.shift, generator),
        ],
        dim=1,
    )
    # affine_grid maps output to input positions: the inverse of x -> factor * R x + shift,
    # i.e. x_in = R^T (x_out - shift) / factor.
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    inverse = inverse / factor.view(n, 1, 1)
    offset = -(inverse @ shift.unsqueeze(2))
    theta = torch.cat([inverse, offset], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if strength.noise > 0:
        noise = torch.randn(moved.shape, generator=generator, dtype=moved.dtype)
        moved = moved + strength.noise * noise
    return moved.clamp_(0.0, 1.0)


class DigitAffineAugment:
    """Training transform of ``digits-affine``: a fresh :func:`random_affine` per call, then
    per-channel normalisation.

    Args:
        mean: Per-channel mean subtracted after the transform.
        std: Per-channel standard deviation divided by after the transform.
        strength: Transform strength.
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        strength: AffineStrength = DEFAULT_STRENGTH,
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.strength = strength

    def __call__(self, image: Tensor) -> Tensor:
        """Transforms one ``[C, H, W]`` image in ``[0, 1]``."""
        moved = random_affine(image.unsqueeze(0), self.strength)[0]
        return (moved - self.mean) / self.std

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength})"


class DigitViews(TensorImageDataset):
    """Fixed transformed views of some digits, with the digit each view was made from.

    Attributes:
        digit_ids: ``digit_ids[i]`` is the index (in scikit-learn's ``load_digits()``) of the
            digit that view ``i`` shows.
    """

    def __init__(self, images: Tensor, targets: Tensor, digit_ids: list[int]) -> None:
        super().__init__(images, targets)
        if len(digit_ids) != len(self):
            raise ValueError(f"{len(digit_ids)} digit ids for {len(self)} views")
        self.digit_ids = list(digit_ids)


def digits_affine_datasets(
    *,
    seed: int = 0,
    use_valid: bool = True,
    strength: AffineStrength = DEFAULT_STRENGTH,
    image_size: int = 16,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    val_views: int = 6,
    test_views: int = 12,
    train_repeats: int = 4,
) -> DataSplits:
    """The ``digits-affine`` task (see the module docstring).

    With the defaults: 1,078 training digits, each seen 4 times per epoch under fresh
    transforms (4,312 images an epoch), 270 validation digits x 6 views = 1,620 images, 449
    test digits x 12 views = 5,388 images, all 16x16 (twice the digits' own 8x8 resolution)
    with 3 identical channels, normalised with the statistics of one seeded augmented pass over
    the training digits.

    Args:
        seed: Seed of the split (scikit-learn's ``random_state``) and of the fixed views.
        use_valid: If false, the validation digits join the training set and ``val`` is
            ``None``; the test digits and their views are the same either way (only the
            normalisation, from the training digits, changes).
        strength: Transform strength, for training and the fixed views alike.
        image_size: Side of the square images, at least 8.
        val_fraction: Share of the digits held out for validation, in ``(0, 1)``.
        test_fraction: Share of the digits held out for testing, in ``(0, 1)``.
        val_views: Fixed views per validation digit (at least 1).
        test_views: Fixed views per test digit (at least 1).
        train_repeats: How many times each training digit appears in one epoch, each time
            under a fresh transform (at least 1): more optimisation steps per epoch, and so
            fewer per-epoch validation passes for the same amount of training.

    Returns:
        The splits, with ``num_classes=10`` and ``in_channels=3``. ``val`` and ``test`` are
        :class:`DigitViews`; ``train`` is a :class:`~adanet.data.TransformSubset` whose
        ``indices`` are the training digits.

    Raises:
        ImportError: If scikit-learn is not installed.
        TypeError, ValueError: On fractions outside ``(0, 1)`` or summing to 1 or more, counts
            that are not ints of at least their minimum, or a ``strength`` that is not an
            :class:`AffineStrength`.
    """
    if not isinstance(strength, AffineStrength):
        raise TypeError(f"strength must be an AffineStrength, got {type(strength).__name__}")
    require_int("image_size", image_size, 8)
    require_int("val_views", val_views, 1)
    require_int("test_views", test_views, 1)
    require_int("train_repeats", train_repeats, 1)
    check_fractions(val_fraction, test_fraction)

    raw, labels = load_digits("digits-affine")
    images = _on_canvas(raw, image_size)
    train_ids, val_ids, test_ids = stratified_split(
        labels, val_fraction, test_fraction, seed, "digits-affine"
    )
    if not use_valid:
        train_ids = sorted(train_ids + val_ids)
    # Statistics of one augmented pass over the training digits only, so nothing leaks from
    # the held-out digits and the training inputs are normalised as they are actually seen.
    stats_gen = torch.Generator().manual_seed(seed ^ _SALT_STATS)
    sample = random_affine(images[train_ids], strength, stats_gen)
    prep = PretrainedCfg(
        input_size=(3, image_size, image_size),
        mean=tuple(float(v) for v in sample.mean(dim=(0, 2, 3))),
        std=tuple(float(v) for v in sample.std(dim=(0, 2, 3))),
        interpolation="bilinear",
    )

    def views(ids: list[int], count: int, salt: int) -> DigitViews:
        generator = torch.Generator().manual_seed(seed ^ salt)
        return _fixed_views(
            images, labels, [i for i in ids for _ in range(count)], strength, prep, generator
        )

    base = TensorImageDataset(images, labels)
    return DataSplits(
        train=TransformSubset(
            base, train_ids * train_repeats, DigitAffineAugment(prep.mean, prep.std, strength)
        ),
        val=views(val_ids, val_views, _SALT_VAL) if use_valid else None,
        test=views(test_ids, test_views, _SALT_TEST),
        num_classes=10,
        image_size=image_size,
        in_channels=3,
        preprocessing=prep,
    )


def _on_canvas(raw: Tensor, image_size: int) -> Tensor:
    """The ``[N, 1, 8, 8]`` digits upsampled to ``_CANVAS_FILL`` of ``image_size``, centred on
    an empty ``image_size`` canvas, as ``[N, 3, S, S]`` (three identical channels: networks
    configured for RGB input run unchanged)."""
    inner = max(8, round(_CANVAS_FILL * image_size))
    small = F.interpolate(raw, size=(inner, inner), mode="bilinear", align_corners=False)
    before = (image_size - inner) // 2
    after = image_size - inner - before
    canvas = F.pad(small.clamp_(0.0, 1.0), (before, after, before, after))
    return canvas.repeat(1, 3, 1, 1).contiguous()


def _fixed_views(
    images: Tensor,
    labels: Tensor,
    ids: list[int],
    strength: AffineStrength,
    prep: PretrainedCfg,
    generator: torch.Generator,
) -> DigitViews:
    """One transformed, normalised view of ``images[i]`` for each ``i`` in ``ids``."""
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    moved = random_affine(images[ids], strength, generator)
    return DigitViews((moved - mean) / std, labels[ids], ids)
