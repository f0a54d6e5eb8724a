"""``PretrainedCfg``: the preprocessing a model expects — input size, mean, std, resizing.

Every :class:`~adanet.EarlyExitNetwork` carries one as ``model.pretrained_cfg`` (timm's name),
so a data pipeline can be built from the model instead of from constants kept elsewhere. It is
a read-only mapping with the keys timm's data config reads, so timm's own helpers work on any
adanet model::

    cfg = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**cfg)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from typing_extensions import Self

from adanet._validation import parse_input_size, require_choice, require_fraction, require_int

__all__ = [
    "CIFAR10_CFG",
    "CIFAR100_CFG",
    "IMAGENET_CFG",
    "PretrainedCfg",
    "default_cfg_for",
]

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# The mapping's keys: those of timm's data config (``resolve_data_config`` reads them from a
# model's ``pretrained_cfg``, and ``create_transform`` takes them as keyword arguments).
_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def _real_tuple(name: str, value: Any) -> tuple[float, ...]:
    """``value`` as a tuple of floats; raises unless it is a non-empty sequence of finite
    real numbers."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a non-empty tuple of numbers, got {value!r}")
    for k, item in enumerate(value):
        # An unbounded interval: the check is "a finite int or float, not a bool".
        require_fraction(
            f"{name}[{k}]",
            item,
            low=-math.inf,
            high=math.inf,
            low_inclusive=False,
            high_inclusive=False,
        )
    return tuple(float(item) for item in value)


@dataclass(frozen=True)
class PretrainedCfg(Mapping[str, Any]):
    """How images are prepared for a model: a frozen dataclass that is also a read-only
    mapping, like timm's ``pretrained_cfg``.

    As a mapping it has the keys of timm's data config: ``input_size``, ``interpolation``,
    ``mean``, ``std``, ``crop_pct`` and ``crop_mode`` (``cfg["mean"]``, ``cfg.get(...)``,
    ``dict(cfg)``), so ``timm.data.resolve_model_data_config(model)`` and
    ``timm.data.create_transform(**model.pretrained_cfg)`` work on adanet models. The same
    values are typed attributes (``cfg.mean``).

    Attributes:
        input_size: ``(C, H, W)`` the model is trained and evaluated at.
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided by after that.
        interpolation: Resizing filter of the evaluation transform: ``"bilinear"``,
            ``"bicubic"`` or ``"nearest"``.
        crop_pct: Evaluation centre crop as a share of the resized side: images are resized
            to ``H / crop_pct`` and centre-cropped to ``H`` (1.0: no resize, as for CIFAR).
        crop_mode: Always ``"center"`` (timm's name for resize-then-centre-crop, the only
            evaluation transform adanet builds); a class constant, not a field.

    Raises:
        TypeError, ValueError: A field of the wrong type or out of range; ``mean`` and
            ``std`` must have one entry per input channel and ``std`` must be positive.
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: ClassVar[str] = "center"

    def __post_init__(self) -> None:
        size = self.input_size
        if not isinstance(size, (tuple, list)) or len(size) != 3:
            raise ValueError(f"input_size must be (C, H, W) with ints >= 1, got {size!r}")
        require_int("input_size[0] (channels)", size[0], 1)
        channels, height, width = parse_input_size(size, channels=size[0])
        object.__setattr__(self, "input_size", (channels, height, width))
        mean, std = _real_tuple("mean", self.mean), _real_tuple("std", self.std)
        for name, values in (("mean", mean), ("std", std)):
            if len(values) != channels:
                raise ValueError(
                    f"{name} needs one entry per input channel ({channels}), got {values!r}"
                )
        if any(value <= 0 for value in std):
            raise ValueError(f"std must be positive, got {std!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        require_choice("interpolation", self.interpolation, _INTERPOLATIONS)
        require_fraction(
            "crop_pct", self.crop_pct, low=0, high=1, low_inclusive=False, high_inclusive=True
        )
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    # The mapping view. ``dataclass`` keeps its own field-wise ``__eq__`` and ``__hash__``, so
    # two configs compare by value and a config is never equal to a plain dict.

    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields (tuples become lists) that :meth:`from_dict` reads
        back. ``crop_mode`` is left out: it is the same for every config."""
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in fields(self)
            for value in [getattr(self, f.name)]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from :meth:`to_dict`'s output, or from the mapping itself (``dict(cfg)``).

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: Unknown or missing keys, a ``crop_mode`` other than ``"center"``, or
                invalid values.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a dict of PretrainedCfg fields, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names) - {"crop_mode"})
        if unknown:
            raise ValueError(f"unknown PretrainedCfg fields {unknown}; allowed: {names}")
        missing = [name for name in ("input_size", "mean", "std") if name not in data]
        if missing:
            raise ValueError(f"PretrainedCfg needs {missing}")
        if "crop_mode" in data:
            require_choice("crop_mode", data["crop_mode"], (cls.crop_mode,))
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names
        }
        return cls(**values)


# Per-channel statistics of the training images, as adanet.data normalises with them.
CIFAR10_CFG = PretrainedCfg(
    input_size=(3, 32, 32), mean=(0.4914, 0.4824, 0.4467), std=(0.2471, 0.2435, 0.2616)
)
CIFAR100_CFG = PretrainedCfg(
    input_size=(3, 32, 32), mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)
)
# The original ImageNet evaluation: resize to 256, centre crop 224 (crop_pct 0.875).
IMAGENET_CFG = PretrainedCfg(
    input_size=(3, 224, 224),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    interpolation="bilinear",
    crop_pct=0.875,
)


def default_cfg_for(variant: str, num_classes: int, in_channels: int) -> PretrainedCfg:
    """The preprocessing the originals use for a stem variant and class count.

    ``"imagenet"`` gives :data:`IMAGENET_CFG`; ``"cifar"`` gives :data:`CIFAR100_CFG` for 100
    classes and :data:`CIFAR10_CFG` otherwise. For other channel counts than 3 the statistics
    are unknown: mean 0.5 and std 0.5 per channel (set ``model.pretrained_cfg`` to your data's).
    """
    base = IMAGENET_CFG if variant == "imagenet" else CIFAR10_CFG
    if variant != "imagenet" and num_classes == 100:
        base = CIFAR100_CFG
    if in_channels == 3:
        return base
    return PretrainedCfg(
        input_size=(in_channels, base.input_size[1], base.input_size[2]),
        mean=(0.5,) * in_channels,
        std=(0.5,) * in_channels,
        interpolation=base.interpolation,
        crop_pct=base.crop_pct,
    )
