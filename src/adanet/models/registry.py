"""The one registry of networks: model names for the factory, and architectures for files.

* Model names: ``create_model("ranet_cifar10")``, ``list_models("msdnet_*")`` and
  ``@register_model`` for your own networks, as timm users know them. Every RANet and MSDNet
  preset is registered as ``ranet_<preset>`` and ``msdnet_<preset>``.
* Architectures (:class:`Architecture`): a model class built from a config class, by the name
  files record (``"RANet"``, ``"MSDNet"``). Model directories, the command line and the
  original formats in :mod:`adanet.compat` look classes up here.

The registry is a :class:`ModelRegistry` object (:data:`default_registry`); registering adds
to it and nothing else.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from adanet.models.config_base import NetworkConfig
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.model_args import ModelArgs
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from adanet.models.network_base import ConfiguredNetwork
from adanet.models.ranet import RANet
from adanet.models.ranet_config import RANetConfig

__all__ = [
    "Architecture",
    "ModelArgs",
    "ModelRegistry",
    "create_model",
    "default_registry",
    "list_models",
    "register_model",
]


@dataclass(frozen=True)
class Architecture:
    """A network class built from a config class, under the name files record.

    Attributes:
        name: The name in ``config.json`` files, run folders and ``--arch``.
        model_cls: The network class; ``model_cls(config)`` builds it.
        config_cls: Its config class (``from_dict``, ``to_dict``, ``preset``).
    """

    name: str
    model_cls: type[EarlyExitNetwork]
    config_cls: type[NetworkConfig]

    def build(self, config: NetworkConfig) -> EarlyExitNetwork:
        """The network for ``config``."""
        return self.model_cls(config)


#: A model entry point: keyword config overrides (``num_classes`` among them) → a network.
EntryPoint = Callable[..., EarlyExitNetwork]
EntryT = TypeVar("EntryT", bound=EntryPoint)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class ModelRegistry:
    """Model names and the entry points that build them."""

    def __init__(self) -> None:
        self._entries: dict[str, EntryPoint] = {}
        self._architectures: dict[str, Architecture] = {}

    def register_architecture(self, architecture: Architecture) -> None:
        """Register a network class and its config class under ``architecture.name``.

        Raises:
            TypeError: Not an :class:`Architecture`.
            ValueError: The name (compared case-insensitively) is taken by another class.
        """
        if not isinstance(architecture, Architecture):
            raise TypeError(f"expected an Architecture, got {type(architecture).__name__}")
        known = self._architectures.get(architecture.name.lower())
        if known is not None and known != architecture:
            raise ValueError(f"an architecture named {architecture.name!r} is already registered")
        self._architectures[architecture.name.lower()] = architecture

    def architecture(self, name: str) -> Architecture:
        """The architecture called ``name`` (case-insensitive).

        Raises:
            ValueError: Unknown name; the message lists the known ones.
        """
        found = self._architectures.get(name.lower()) if isinstance(name, str) else None
        if found is None:
            known = sorted(a.name for a in self._architectures.values())
            raise ValueError(f"unknown architecture {name!r}; known: {known}")
        return found

    def architecture_of(self, model: object) -> Architecture | None:
        """The architecture whose model class ``model`` is an instance of (exactly), if any."""
        return next((a for a in self._architectures.values() if type(model) is a.model_cls), None)

    def register(self, name: str, entry: EntryPoint) -> None:
        """Register ``entry`` under ``name``.

        Registering the same function again (same module and qualified name, as when a
        module is run twice) replaces the entry.

        Raises:
            TypeError: ``entry`` is not callable.
            ValueError: A malformed name, or a name taken by another entry point.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"model names are identifiers (letters, digits, '_', '.', '-'), got {name!r}"
            )
        if not callable(entry):
            raise TypeError(f"a model entry point must be callable, got {entry!r}")
        known = self._entries.get(name)
        if known is not None and (_origin(known) is None or _origin(known) != _origin(entry)):
            raise ValueError(f"a model named {name!r} is already registered")
        # The same function defined again (a module re-run in a notebook, importlib.reload)
        # replaces its own registration.
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name``.

        Raises:
            KeyError: ``name`` is not registered.
        """
        if name not in self._entries:
            raise KeyError(f"no model named {name!r} is registered")
        del self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern``, sorted."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a string such as 'ranet_*', got {pattern!r}")
        return sorted(name for name in self._entries if fnmatch.fnmatchcase(name, pattern))

    def entry(self, name: str) -> EntryPoint:
        """The entry point of ``name``.

        Raises:
            ValueError: Unknown name; the message lists close and known names.
        """
        if not isinstance(name, str) or name not in self._entries:
            close = [n for n in self._entries if isinstance(name, str) and name in n][:5]
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"unknown model {name!r}{hint} (adanet.list_models() lists the "
                f"{len(self._entries)} known ones)"
            )
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _origin(entry: EntryPoint) -> tuple[str, str] | None:
    # Where an entry point is defined: its source file and qualified name, so one file loaded
    # under two module names (a script run twice, importlib by path) is the same entry. None
    # for objects without a name (partials), which can never replace a registration.
    qualname = getattr(entry, "__qualname__", None)
    if not qualname:
        return None
    where: str | None
    try:
        where = os.path.realpath(inspect.getfile(entry))
    except (TypeError, OSError):
        where = getattr(entry, "__module__", None)
    return (where, qualname) if where else None


#: The registry :func:`create_model`, :func:`list_models` and :func:`register_model` use.
default_registry = ModelRegistry()


@overload
def register_model(entry: EntryT, /) -> EntryT: ...


@overload
def register_model(*, name: str | None = None) -> Callable[[EntryT], EntryT]: ...


def register_model(entry: Any = None, /, *, name: str | None = None) -> Any:
    """Register a network under its ``__name__`` (or ``name``): ``@register_model`` or
    ``@register_model(name="my_net")``.

    The entry point — a function or an :class:`~adanet.EarlyExitNetwork` subclass — is
    called with the keyword overrides given to :func:`create_model` (``num_classes`` among
    them when given) and returns the network. It is returned unchanged.

    Raises:
        TypeError: ``entry`` is not callable.
        ValueError: The name is malformed or taken.
    """

    def decorate(function: EntryT) -> EntryT:
        default_registry.register(name or str(getattr(function, "__name__", "")), function)
        return function

    return decorate if entry is None else decorate(entry)


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered networks matching the shell-style ``pattern`` (sorted)."""
    return default_registry.names(pattern)


def create_model(
    name: str, *, num_classes: int | None = None, **overrides: Any
) -> EarlyExitNetwork:
    """Build a registered network with fresh weights.

    Load weights afterwards: :func:`adanet.load_pretrained` reads a model directory, and
    :func:`adanet.compat.load_reference_checkpoint` an original RANet/MSDNet checkpoint.

    Args:
        name: A name from :func:`list_models`, e.g. ``"ranet_cifar10"``.
        num_classes: Classes of every exit (default: the preset's).
        **overrides: Config fields to change, e.g. ``norm="group:8"``, ``act="silu"``,
            ``memory_efficient=True``; for a network registered with :func:`register_model`,
            the keyword arguments of its entry point.

    Returns:
        The network. It records ``name`` and the arguments in ``model.model_args``, so
        :func:`adanet.save_pretrained` can rebuild it.

    Raises:
        ValueError: An unknown name or config field, or an invalid value.
        TypeError: The entry point returned something other than an
            :class:`~adanet.EarlyExitNetwork`.
    """
    entry = default_registry.entry(name)
    arguments = dict(overrides)
    if num_classes is not None:
        arguments["num_classes"] = num_classes
    model = entry(**arguments)
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"the entry point of {name!r} returned a {type(model).__name__}, not an "
            "adanet.EarlyExitNetwork"
        )
    model.model_args = ModelArgs(name, arguments)
    return model


def _from_preset(network: type[ConfiguredNetwork[Any]], preset: str, **overrides: Any) -> Any:
    config = network.config_class.preset(preset)
    if overrides:
        config = config.replace(**overrides)
    return network(config)


def _register_builtins(registry: ModelRegistry) -> None:
    for prefix, network, config_class in (
        ("ranet", RANet, RANetConfig),
        ("msdnet", MSDNet, MSDNetConfig),
    ):
        registry.register_architecture(Architecture(network.__name__, network, config_class))
        for preset in config_class.preset_names():
            entry = functools.partial(_from_preset, network, preset)
            registry.register(f"{prefix}_{preset}", entry)


_register_builtins(default_registry)
