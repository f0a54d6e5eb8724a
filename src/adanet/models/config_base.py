"""``NetworkConfig``: what every architecture config shares.

A plain-dict / JSON round trip, named presets, validated ``replace``, and the norm and
activation specs. Reading an original run's ``args.txt`` is :mod:`adanet.compat`'s
(:func:`adanet.compat.read_reference_config`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from typing_extensions import Self

from adanet._validation import require_bool, require_choice, require_int
from adanet.blocks.norm_act import ActSpec, NormSpec, check_act, check_norm

__all__ = ["NetworkConfig", "Variant", "cifar_presets"]

#: The stem and head layout: ``"cifar"`` (small images) or ``"imagenet"`` (large images).
Variant = Literal["cifar", "imagenet"]


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Base of the frozen architecture dataclasses (:class:`~adanet.RANetConfig`,
    :class:`~adanet.MSDNetConfig`): the fields every network has, and their I/O.

    These fields are keyword-only. Subclasses set ``_network`` (the name used in messages)
    and ``_presets`` (preset name → field values), and validate their own fields in
    :meth:`_validate`.

    Attributes:
        variant: ``"cifar"`` (3×3 stem, 128-wide heads) or ``"imagenet"`` (7×7/2 stem with
            max-pool, heads as wide as their input), as the original's ``--data``.
        num_classes: Classes of every exit.
        in_channels: Channels of the input images.
        memory_efficient: In training, dense features stay in channel pieces and backward
            recomputes only the concatenations and the norm → activation between
            convolutions, never a convolution (shared-storage recomputation, Pleiss et al.,
            2017, "Memory-Efficient Implementation of DenseNets"): less than half the
            activation memory for a small share more compute; same outputs, gradients and
            BatchNorm statistics, same checkpoints. Eval and ``no_grad`` are unaffected.
        norm: Normalisation: ``"batch"`` (the originals'), ``"group:G"``, ``"layer"`` or a
            factory (see :mod:`adanet.blocks.norm_act`).
        act: Activation: ``"relu"`` (the originals'), ``"silu"``, ``"gelu"``,
            ``"hardswish"`` or a factory.
    """

    variant: Variant = "cifar"
    num_classes: int = 10
    in_channels: int = 3
    memory_efficient: bool = False
    norm: NormSpec = "batch"
    act: ActSpec = "relu"

    _network: ClassVar[str] = "network"
    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __post_init__(self) -> None:
        require_int("num_classes", self.num_classes, 1)
        require_int("in_channels", self.in_channels, 1)
        require_choice("variant", self.variant, ("cifar", "imagenet"))
        require_bool("memory_efficient", self.memory_efficient)
        check_norm(self.norm)
        check_act(self.act)
        self._validate()

    def _validate(self) -> None:
        """Check the subclass's own fields (called after the shared ones are checked)."""

    def plan(self) -> Any:
        """The network's layout, computed from the fields (each subclass returns its own
        plan type); the model's constructor builds only from it."""
        raise NotImplementedError

    @property
    def default_image_size(self) -> int:
        """The image size the original trains this variant at (32 or 224)."""
        return 32 if self.variant == "cifar" else 224

    # ------------------------------------------------------------------------ dict / JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists) that :meth:`from_dict` reads back.

        Raises:
            TypeError: ``norm`` or ``act`` is a callable, which JSON cannot hold.
        """
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if callable(value):
                raise TypeError(
                    f"{field.name}={value!r} is a callable, which a dict or JSON cannot hold: "
                    f"use a named {field.name} (see adanet.blocks.norm_act) to save this config"
                )
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from :meth:`to_dict`'s output.

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: On keys that are not fields of this config, or invalid values.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a dict of {cls.__name__} fields, got {type(data).__name__}")
        _check_names(cls, data)
        values: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        return cls(**values)

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Build a config from :meth:`to_json`'s output.

        Raises:
            ValueError: Not JSON, or not a valid config.
        """
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a JSON {cls.__name__}: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {cls.__name__} is an object, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like a new config.

        Raises:
            ValueError: Names that are not fields, or invalid values.
        """
        _check_names(type(self), changes)
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------- presets

    @classmethod
    def preset(cls, name: str) -> Self:
        """A published configuration by name (see :meth:`preset_names`).

        Raises:
            ValueError: For an unknown name; the message lists the known ones.
        """
        presets = cls._presets
        if not isinstance(name, str) or name not in presets:
            raise ValueError(
                f"unknown {cls._network} preset {name!r}; known presets: {sorted(presets)}"
            )
        return cls(**presets[name])

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`."""
        return tuple(sorted(cls._presets))


def cifar_presets(suffix: str, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``cifar10<suffix>`` and ``cifar100<suffix>`` presets: ``values`` with 10 and 100
    classes (the originals train the same architecture on both)."""
    return {f"cifar{n}{suffix}": {**values, "num_classes": n} for n in (10, 100)}


def _check_names(cls: type, data: Mapping[str, Any]) -> None:
    assert dataclasses.is_dataclass(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {sorted(names)}")
