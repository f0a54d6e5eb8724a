"""Which original format belongs to which adanet architecture: an explicit registry.

A format names the architecture of :mod:`adanet.models`' registry it reads into; the model
and config classes are looked up there, so there is one table of architectures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adanet.compat import msdnet, ranet
from adanet.models.registry import default_registry

__all__ = [
    "ReferenceFormat",
    "find_reference_format",
    "read_reference_config",
    "reference_format_for",
    "register_reference_format",
]


@dataclass(frozen=True)
class ReferenceFormat:
    """How one original implementation writes its runs, and how adanet reads them.

    Attributes:
        arch: The original's ``--arch`` value (``"RANet"``, ``"msdnet"``).
        architecture: The name of the adanet architecture it maps to (see
            :func:`adanet.models.registry.ModelRegistry.architecture`).
        option_names: The original's option names and the config fields they fill.
        defaults: The original's defaults for options an args text leaves out (empty
            where the config's own defaults apply).
        read_config: Builds a config from an ``args.txt`` path or text.
        translate_key: ``(model, original parameter name) -> adanet name``.
    """

    arch: str
    architecture: str
    option_names: Mapping[str, str]
    defaults: Mapping[str, Any]
    read_config: Callable[[str | os.PathLike[str]], Any]
    translate_key: Callable[[Any, str], str]


_FORMATS: list[ReferenceFormat] = []


def register_reference_format(fmt: ReferenceFormat) -> None:
    """Register ``fmt`` for its config and model classes (and their subclasses).

    Raises:
        TypeError: ``fmt`` is not a :class:`ReferenceFormat`.
        ValueError: A format is already registered for that arch.
    """
    if not isinstance(fmt, ReferenceFormat):
        raise TypeError(f"expected a ReferenceFormat, got {type(fmt).__name__}")
    if any(known.arch.lower() == fmt.arch.lower() for known in _FORMATS):
        raise ValueError(f"a reference format for arch {fmt.arch!r} is already registered")
    _FORMATS.append(fmt)


def reference_format_for(target: Any) -> ReferenceFormat:
    """The format registered for a config or model class or instance, or an arch name.

    Raises:
        LookupError: Nothing is registered for it.
    """
    if isinstance(target, str):
        for fmt in _FORMATS:
            if fmt.arch.lower() == target.lower():
                return fmt
        known = [fmt.arch for fmt in _FORMATS]
        raise LookupError(f"no original format for arch {target!r}; known: {known}")
    cls = target if isinstance(target, type) else type(target)
    for fmt in _FORMATS:
        registered = default_registry.architecture(fmt.architecture)
        if issubclass(cls, (registered.config_cls, registered.model_cls)):
            return fmt
    raise LookupError(
        f"no original format is registered for {cls.__name__}; register one with "
        "adanet.compat.register_reference_format"
    )


def find_reference_format(target: Any) -> ReferenceFormat | None:
    """Like :func:`reference_format_for`, but ``None`` when nothing is registered."""
    try:
        return reference_format_for(target)
    except LookupError:
        return None


def read_reference_config(path_or_text: str | os.PathLike[str], *, arch: str | None = None) -> Any:
    """The adanet config of an original run, from the ``args.txt`` its ``main.py`` wrote.

    Args:
        path_or_text: Path of the file, or its one ``Namespace(...)`` line.
        arch: The architecture the run must be (``"RANet"``, ``"msdnet"``, compared
            case-insensitively); ``None`` takes the text's ``arch`` option (RANet when it
            names none).

    Returns:
        A :class:`~adanet.RANetConfig`, :class:`~adanet.MSDNetConfig` or the config of a
        registered format.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not an args text, another architecture than ``arch``, an unknown
            dataset or an invalid option.
        LookupError: No format is registered for the text's ``arch``.
    """
    from adanet.compat.args import parse_reference_args

    if arch is None:
        arch = str(parse_reference_args(path_or_text).get("arch", "RANet"))
    return reference_format_for(arch).read_config(path_or_text)


def _register_builtin_formats() -> None:
    register_reference_format(
        ReferenceFormat(
            "RANet",
            "RANet",
            ranet.REFERENCE_OPTION_NAMES,
            {},
            ranet.read_ranet_config,
            ranet.translate_ranet_key,
        )
    )
    register_reference_format(
        ReferenceFormat(
            "msdnet",
            "MSDNet",
            msdnet.REFERENCE_OPTION_NAMES,
            msdnet.REFERENCE_DEFAULTS,
            msdnet.read_msdnet_config,
            msdnet.translate_msdnet_key,
        )
    )


_register_builtin_formats()
