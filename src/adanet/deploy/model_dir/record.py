"""What ``config.json`` records about a network, and the network it describes.

:func:`build_record` says what rebuilds a network (a registered architecture and its config, or
a :func:`adanet.create_model` name and arguments); :func:`rebuild` builds it back, first on the
meta device within :mod:`adanet.deploy.metadata`'s bounds; :func:`check_config` validates a
whole ``config.json`` against that network, at save and at load alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adanet._validation import is_int
from adanet.deploy.metadata import (
    CostRecord,
    bounded_build,
    check_cost_record,
    check_policy_document,
    check_preprocessing,
    check_version,
    head_classes,
    require_keys,
)
from adanet.deploy.model_dir.layout import (
    FORMAT_VERSION,
    SAFETENSORS_FILE,
    TORCH_FILE,
    PretrainedError,
)
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.models.registry import create_model, default_registry
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["CONFIG_FORMAT", "CheckedConfig", "build_record", "check_config", "rebuild"]

CONFIG_FORMAT = "adanet-pretrained"
_COMMON_KEYS = (
    "format",
    "format_version",
    "adanet_version",
    "arch",
    "num_exits",
    "weights",
    "policy",
    "costs",
    "preprocessing",
)


def build_record(model: EarlyExitNetwork) -> dict[str, Any]:
    """What ``config.json`` records to rebuild ``model``: a registered architecture and its
    config, or the registered model name and arguments :func:`adanet.create_model` used.

    Raises:
        TypeError: Neither applies, the config holds a callable, or the arguments are not JSON
            values.
    """
    architecture = default_registry.architecture_of(model)
    if architecture is not None:
        return {"arch": architecture.name, "config": getattr(model, "config").to_dict()}  # noqa: B009
    if model.model_args is not None:
        arguments = dict(model.model_args.arguments)
        try:
            json.dumps(arguments, allow_nan=False)
        except (TypeError, ValueError):
            raise TypeError(
                f"the arguments {arguments!r} {model.model_args.name!r} was built with are not "
                "JSON values, so a model directory cannot record them"
            ) from None
        return {
            "arch": model.model_args.name,
            "model": model.model_args.name,
            "arguments": arguments,
        }
    raise TypeError(
        f"save_pretrained rebuilds a model from what built it: a registered architecture "
        f"(RANet, MSDNet) with its config, or a name from adanet.create_model; got a "
        f"{type(model).__name__} built directly. Register it with @adanet.models.register_model "
        "and build it with adanet.create_model(name, ...)"
    )


def _builder(record: Mapping[str, Any], where: str) -> Any:
    """A function of no arguments building the network ``record`` describes.

    Raises:
        PretrainedError: An unknown architecture or model name.
    """
    if "model" in record:
        name = record["model"]
        if not isinstance(name, str) or name not in default_registry:
            raise PretrainedError(
                f"{where} holds a {name!r} model, which is not registered: import the module "
                "that registers it (@adanet.models.register_model) before loading"
            )
        arguments = record.get("arguments")
        if not isinstance(arguments, Mapping):
            raise PretrainedError(f"{where}: 'arguments' must be a JSON object, got {arguments!r}")
        return lambda: create_model(name, **dict(arguments))
    try:
        architecture = default_registry.architecture(str(record.get("arch")))
    except ValueError as error:
        raise PretrainedError(f"{where} holds an unknown architecture: {error}") from None

    def build() -> EarlyExitNetwork:
        try:
            config = architecture.config_cls.from_dict(record["config"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"an invalid {architecture.name} config: {error}") from None
        return architecture.build(config)

    return build


def rebuild(record: Mapping[str, Any], where: str, *, meta: bool) -> EarlyExitNetwork:
    """The network ``record`` describes: on the meta device (nothing allocated, within the
    bounds of :func:`adanet.deploy.metadata.bounded_build`) or for real, with fresh weights.

    Raises:
        PretrainedError: An unknown architecture or name, an invalid config, or one beyond the
            bounds.
    """
    build = _builder(record, where)
    if meta:
        return bounded_build(build, where, PretrainedError)
    try:
        network: EarlyExitNetwork = build()
    except (TypeError, ValueError) as error:
        raise PretrainedError(f"{where}: cannot build the network it describes: {error}") from None
    return network


@dataclass(frozen=True)
class CheckedConfig:
    """A ``config.json`` checked against the network it describes."""

    arch: str
    version: int
    adanet_version: str
    weights: str
    costs: CostRecord
    preprocessing: PretrainedCfg | None
    policy: EarlyExitPolicy | PatienceExitPolicy | None


def check_config(
    document: Any, where: str, network: EarlyExitNetwork | None = None
) -> tuple[CheckedConfig, EarlyExitNetwork]:
    """Validate a whole ``config.json`` document against its network.

    Args:
        document: The parsed JSON.
        where: The file, for messages.
        network: The network it describes; built on the meta device from the document when
            omitted (at load), given by the caller at save.

    Returns:
        The checked fields, and the network they were checked against.

    Raises:
        PretrainedError: Naming the file and field.
    """
    extra = (
        ("model", "arguments")
        if isinstance(document, Mapping) and "model" in document
        else ("config",)
    )
    doc = require_keys(document, where, PretrainedError, required=(*_COMMON_KEYS, *extra))
    if doc["format"] != CONFIG_FORMAT:
        raise PretrainedError(f"{where} is not an adanet model config (format {doc['format']!r})")
    version = check_version(doc["format_version"], FORMAT_VERSION, where, PretrainedError)
    for key in ("arch", "adanet_version"):
        if not isinstance(doc[key], str):
            raise PretrainedError(f"{where}: {key} must be a string, got {doc[key]!r}")
    if "model" in doc and doc["model"] != doc["arch"]:
        raise PretrainedError(f"{where}: model {doc['model']!r} differs from arch {doc['arch']!r}")
    if doc["weights"] not in (SAFETENSORS_FILE, TORCH_FILE):
        raise PretrainedError(
            f"{where}: weights must be {SAFETENSORS_FILE!r} or {TORCH_FILE!r}, got "
            f"{doc['weights']!r}"
        )
    if network is None:
        network = rebuild(doc, where, meta=True)
    if not is_int(doc["num_exits"]) or doc["num_exits"] != network.num_exits:
        raise PretrainedError(
            f"{where}: num_exits is {doc['num_exits']!r} but the network it describes has "
            f"{network.num_exits} exits"
        )
    costs = check_cost_record(
        doc["costs"],
        num_exits=network.num_exits,
        channels=network.in_channels,
        where=f"{where}: costs",
        error=PretrainedError,
    )
    prep = None
    if doc["preprocessing"] is not None:
        prep = check_preprocessing(
            doc["preprocessing"],
            channels=network.in_channels,
            where=f"{where}: preprocessing",
            error=PretrainedError,
        )
        if prep.input_size != costs.input_size:
            raise PretrainedError(
                f"{where}: the costs were measured at {list(costs.input_size)} but the "
                f"preprocessing's input_size is {list(prep.input_size)}"
            )
    policy = None
    if doc["policy"] is not None:
        policy = check_policy_document(
            doc["policy"],
            num_exits=network.num_exits,
            num_classes=head_classes(network),
            input_size=costs.input_size,
            where=f"{where}: policy",
            error=PretrainedError,
        )
    checked = CheckedConfig(
        doc["arch"], version, doc["adanet_version"], doc["weights"], costs, prep, policy
    )
    return checked, network
