"""``NetworkConfig``: what every architecture config shares.

A plain-dict / JSON round trip, named presets, validated ``replace``, the norm and
activation specs, and reading an original run's ``args.txt`` (through the format registered
for the config in :mod:`adanet.compat`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from typing_extensions import Self

from .._validation import require_choice, require_int
from ..blocks.norm_act import check_act, check_norm

__all__ = ["NetworkConfig", "Variant"]

#: The stem and head layout: ``"cifar"`` (small images) or ``"imagenet"`` (large images).
Variant = Literal["cifar", "imagenet"]


class NetworkConfig:
    """Base of the frozen architecture dataclasses (:class:`~adanet.RANetConfig`,
    :class:`~adanet.MSDNetConfig`).

    Subclasses set ``_network`` (the name used in messages) and override
    :meth:`_preset_table` (preset name → field values). Every subclass has the fields
    ``num_classes``, ``in_channels``, ``variant``, ``memory_efficient``, ``norm`` and
    ``act``, checked by :meth:`_check_common`.
    """

    _network: ClassVar[str]

    @classmethod
    def _preset_table(cls) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def _check_common(self) -> None:
        """Validate the fields every config has."""
        values = vars(self)
        require_int("num_classes", values["num_classes"], 1)
        require_int("in_channels", values["in_channels"], 1)
        require_choice("variant", values["variant"], ("cifar", "imagenet"))
        if not isinstance(values["memory_efficient"], bool):
            raise TypeError(f"memory_efficient must be a bool, got {values['memory_efficient']!r}")
        check_norm(values["norm"])
        check_act(values["act"])

    @property
    def default_image_size(self) -> int:
        """The image size the original trains this variant at (32 or 224)."""
        return 32 if vars(self)["variant"] == "cifar" else 224

    # ------------------------------------------------------------------------ dict / JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists) that :meth:`from_dict` reads back.

        Raises:
            TypeError: ``norm`` or ``act`` is a callable, which JSON cannot hold.
        """
        assert dataclasses.is_dataclass(self)
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
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like a new config.

        Raises:
            ValueError: Names that are not fields, or invalid values.
        """
        _check_names(type(self), changes)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    # ---------------------------------------------------------------------------- presets

    @classmethod
    def preset(cls, name: str) -> Self:
        """A published configuration by name (see :meth:`preset_names`).

        Raises:
            ValueError: For an unknown name; the message lists the known ones.
        """
        presets = cls._preset_table()
        if not isinstance(name, str) or name not in presets:
            raise ValueError(
                f"unknown {cls._network} preset {name!r}; known presets: {sorted(presets)}"
            )
        return cls(**presets[name])

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`."""
        return tuple(sorted(cls._preset_table()))

    # --------------------------------------------------------------------- original format

    @classmethod
    def from_reference_args(cls, path_or_text: str | os.PathLike[str]) -> Self:
        """Read the ``args.txt`` that the original ``main.py`` writes.

        The reading rules live in :mod:`adanet.compat`, registered for this config class.

        Args:
            path_or_text: Path of the file, or its one ``Namespace(...)`` line.

        Raises:
            ValueError: When the file is for another architecture, names an unknown
                dataset, or holds an invalid option.
            LookupError: No original format is registered for this config class.
        """
        from ..compat import reference_format_for  # compat imports the configs

        config = reference_format_for(cls).read_config(path_or_text)
        assert isinstance(config, cls)
        return config


def _check_names(cls: type, data: Mapping[str, Any]) -> None:
    assert dataclasses.is_dataclass(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {sorted(names)}")
