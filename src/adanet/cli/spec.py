"""The run spec: every setting of one ``adanet train``/``eval`` run, built once, frozen.

:meth:`RunSpec.from_args` resolves the command line (defaults, ``--preset``, the dataset's
classes) into one immutable object; the commands read it, and ``config.json`` and
``args.txt`` are written from it as it is. The argparse namespace is never modified.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adanet.cli.errors import CLIError
from adanet.compat import read_reference_config, reference_format_for
from adanet.data import dataset_info
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.registry import default_registry

__all__ = [
    "IDENTITY_FIELDS",
    "Architecture",
    "RunSpec",
    "architecture",
    "architecture_option_names",
    "build_config",
    "build_model",
    "reference_args_line",
]


@dataclass(frozen=True)
class Architecture:
    """A network the command line can build.

    Attributes:
        name: Its name in ``--arch``, ``config.json`` and checkpoints.
        config_cls: The config class (``from_dict``, ``preset``).
        model_cls: The model class, built from a config.
        reference_names: The original's option names → config fields.
        extra_options: adanet's own flags → config fields (``--bnAfter``).
    """

    name: str
    config_cls: Any
    model_cls: Any
    reference_names: Mapping[str, str]
    extra_options: Mapping[str, str]

    @property
    def option_names(self) -> dict[str, str]:
        """Every architecture flag (argparse dest) this network reads → config field."""
        return {**self.reference_names, **self.extra_options}


# adanet's own architecture flags beyond the originals' (theirs could not turn bnAfter off).
_EXTRA_OPTIONS: dict[str, dict[str, str]] = {"RANet": {"bnAfter": "bn_after"}}


def _architectures() -> dict[str, Architecture]:
    """Architecture name (lower case) → how to build it: the classes from the architecture
    registry (:mod:`adanet.models.registry`), the option names from the originals' formats
    registered in :mod:`adanet.compat`."""
    table: dict[str, Architecture] = {}
    for name in ("RANet", "msdnet"):
        fmt = reference_format_for(name)
        registered = default_registry.architecture(fmt.architecture)
        # The command line speaks the originals' --arch names ("RANet", "msdnet").
        table[fmt.arch.lower()] = Architecture(
            fmt.arch,
            registered.config_cls,
            registered.model_cls,
            fmt.option_names,
            _EXTRA_OPTIONS.get(fmt.arch, {}),
        )
    return table


def architecture(name: str) -> Architecture:
    """The architecture called ``name`` (case-insensitive).

    Raises:
        CLIError: An unknown name.
    """
    table = _architectures()
    if name.lower() not in table:
        known = ", ".join(a.name for a in table.values())
        raise CLIError(f"unknown --arch {name!r}; choose from {known}")
    return table[name.lower()]


def architecture_option_names() -> set[str]:
    """Every architecture flag (argparse dest) of any network."""
    names: set[str] = set()
    for arch in _architectures().values():
        names |= set(arch.option_names)
    return names


def build_model(arch: str, config: Any) -> EarlyExitNetwork:
    """The one place the command line makes a network from an architecture name and config.

    Raises:
        CLIError: The config passes its own checks but the network cannot be built from it
            (e.g. a ``--reduction`` that leaves a layer without channels).
    """
    try:
        model: EarlyExitNetwork = architecture(arch).model_cls(config)
    except (ValueError, TypeError, ZeroDivisionError, RuntimeError) as error:
        raise CLIError(
            f"cannot build {arch} from this configuration ({type(error).__name__}: {error}); "
            "a layer may be left without channels (check --reduction, --compress-factor, "
            "--growthRate)"
        ) from None
    return model


def build_config(args: argparse.Namespace) -> tuple[str, Any]:
    """The architecture name and model config a parsed command line asks for.

    Start from ``--preset`` if given, else from the original ``args.py`` defaults; every
    architecture flag given explicitly overrides; ``num_classes`` and the stem variant follow
    ``--data``.

    Raises:
        CLIError: Unknown architecture or preset, a flag the architecture does not have, or
            an invalid combination of options.
    """
    arch = architecture(args.arch or "RANet")
    info = dataset_info(args.data or "cifar10")
    if args.preset:
        try:
            values: dict[str, Any] = dict(arch.config_cls.preset(args.preset).to_dict())
        except ValueError as error:
            raise CLIError(str(error)) from None
    else:
        # The original defaults, as the config reads them from an args.txt that gives none.
        values = read_reference_config(f"Namespace(arch={arch.name!r})", arch=arch.name).to_dict()
    fields = arch.option_names
    for option in sorted(architecture_option_names()):
        given = getattr(args, option, None)
        if given is None:
            continue
        if option not in fields:
            raise CLIError(f"--{option.replace('_', '-')} does not apply to --arch {arch.name}")
        values[fields[option]] = given
    values["num_classes"] = info.num_classes
    values["variant"] = info.variant
    try:
        config = arch.config_cls.from_dict(values)
    except (TypeError, ValueError, ZeroDivisionError) as error:
        raise CLIError(f"invalid {arch.name} configuration: {error}") from None
    return arch.name, config


IDENTITY_FIELDS = ("arch", "config", "data", "data_root", "use_valid", "seed")
"""What a resumed run must share with the run it continues: the model and the exact data
(its splits depend on the seed, so another seed could put test images into training)."""


# RunSpec fields taken from the command line as they are, and on/off flags read as bools.
_COPIED_OPTIONS = (
    "evalmode",
    "evaluate_from",
    "epochs",
    "start_epoch",
    "batch_size",
    "workers",
    "optimizer",
    "lr",
    "lr_type",
    "decay_rate",
    "momentum",
    "weight_decay",
    "amp",
    "loss",
    "cost_convention",
    "print_freq",
)
_FLAG_OPTIONS = ("resume", "overwrite", "channels_last", "sync_bn", "download", "tensorboard")


@dataclass(frozen=True)
class RunSpec:
    """Every setting of one run, resolved from the command line (see the module docs).

    The attributes are the command-line options under their argparse names, with defaults
    filled in, plus ``arch`` and ``config`` (the model config built from them).
    """

    arch: str
    config: Any
    data: str
    data_root: str | None
    use_valid: bool
    seed: int
    save: str
    resume: bool
    overwrite: bool
    evalmode: str | None
    evaluate_from: str
    epochs: int
    start_epoch: int
    batch_size: int
    workers: int
    optimizer: str
    lr: float
    lr_type: str
    decay_rate: float
    momentum: float
    weight_decay: float
    amp: str | None
    channels_last: bool
    loss: str
    sync_bn: bool
    cost_convention: str
    download: bool
    progress: bool
    print_freq: int
    tensorboard: bool
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace, saved: Mapping[str, Any] | None = None) -> RunSpec:
        """Resolve a parsed command line; ``saved`` (a run's ``config.json``) fills the data
        settings the command line leaves out (``eval`` of a run folder).

        Raises:
            CLIError: An invalid architecture or option combination.
        """
        previous = saved or {}
        data = args.data or previous.get("data") or "cifar10"
        resolved = argparse.Namespace(**{**vars(args), "data": data})
        arch, config = build_config(resolved)
        use_valid = args.use_valid if args.use_valid is not None else previous.get("use_valid")
        seed = args.seed if args.seed is not None else previous.get("seed", 0)
        given = {
            key: value
            for key, value in vars(args).items()
            if key not in ("command", "run") and _plain(value)
        }
        copied: dict[str, Any] = {name: getattr(args, name) for name in _COPIED_OPTIONS}
        flags: dict[str, Any] = {name: bool(getattr(args, name)) for name in _FLAG_OPTIONS}
        return cls(
            arch=arch,
            config=config,
            data=data,
            data_root=args.data_root or previous.get("data_root"),
            use_valid=bool(use_valid),
            seed=int(seed),
            save=args.save or f"save/default-{time.time()}",
            progress=not args.no_progress,
            options=tuple(sorted(given.items())),
            **copied,
            **flags,
        )

    @property
    def folder(self) -> Path:
        """The run folder (``--save``)."""
        return Path(self.save)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the spec (``config.json``); the config as ``to_dict()``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["config"] = self.config.to_dict()
        values.pop("options")
        return values

    def identity(self) -> dict[str, Any]:
        """The settings of :data:`IDENTITY_FIELDS`, normalised for comparison."""
        return RunSpec.identity_of(self.to_dict())

    @staticmethod
    def identity_of(settings: Mapping[str, Any]) -> dict[str, Any]:
        """The :data:`IDENTITY_FIELDS` of a saved ``config.json``, normalised for comparison.

        Raises:
            KeyError: A field is missing.
            ValueError: An unknown dataset.
        """
        values = {key: settings[key] for key in IDENTITY_FIELDS}
        values["arch"] = str(values["arch"]).lower()
        values["data"] = dataset_info(str(values["data"])).name
        values["use_valid"] = bool(values["use_valid"])
        values["data_root"] = normalise_data_root(values["data"], values["data_root"])
        return values


def normalise_data_root(data: str, root: str | None) -> str | None:
    """``root`` as an absolute path, or ``None`` for datasets that read no folder."""
    if root is None or not dataset_info(data).needs_root:
        return None
    return os.path.abspath(os.path.expanduser(root))


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str | tuple)


def reference_args_line(args: argparse.Namespace | RunSpec, arch: str, config: Any) -> str:
    """The ``Namespace(...)`` line the original writes to ``args.txt``, with the architecture
    options of the config actually built (so :func:`adanet.compat.read_reference_config`
    rebuilds it)."""
    if isinstance(args, RunSpec):
        values: dict[str, Any] = dict(args.options)
        values.update({"seed": args.seed, "save": args.save, "data_root": args.data_root})
        use_valid, data = args.use_valid, args.data
    else:
        values = {k: v for k, v in vars(args).items() if k not in ("command", "run") and _plain(v)}
        use_valid, data = bool(args.use_valid), args.data or "cifar10"
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    fields = config.to_dict()
    for reference, field_name in architecture(arch).reference_names.items():
        value = fields[field_name]
        values[reference] = list(value) if isinstance(value, list | tuple) else value
    values["arch"] = arch
    values["data"] = data
    values["use_valid"] = use_valid
    values["nScales"] = len(fields.get("growth_factors", ()))
    values["num_classes"] = fields["num_classes"]
    values["splits"] = ["train", "val", "test"] if use_valid else ["train", "val"]
    return repr(argparse.Namespace(**values))
