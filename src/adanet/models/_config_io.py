"""What every architecture config shares: a plain-dict / JSON round trip and named presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from typing_extensions import Self

__all__ = ["ConfigIO"]


class ConfigIO:
    """Mixin for the frozen architecture dataclasses (:class:`~adanet.RANetConfig`,
    :class:`~adanet.MSDNetConfig`).

    Subclasses set ``_network`` (the name used in messages) and override
    :meth:`_preset_table` (preset name → field values).
    """

    _network: ClassVar[str]

    @classmethod
    def _preset_table(cls) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists) that :meth:`from_dict` reads back."""
        assert dataclasses.is_dataclass(self)
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from :meth:`to_dict`'s output.

        Raises:
            ValueError: On keys that are not fields of this config.
        """
        assert dataclasses.is_dataclass(cls)
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {sorted(names)}")
        values: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        return cls(**values)

    @classmethod
    def preset(cls, name: str) -> Self:
        """A published configuration by name (see :meth:`preset_names`).

        Raises:
            ValueError: For an unknown name; the message lists the known ones.
        """
        presets = cls._preset_table()
        if name not in presets:
            raise ValueError(
                f"unknown {cls._network} preset {name!r}; known presets: {sorted(presets)}"
            )
        return cls(**presets[name])

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`."""
        return tuple(sorted(cls._preset_table()))
