"""A self-contained model directory: ``save_pretrained`` / ``load_pretrained``.

A directory written by :func:`save_pretrained` holds everything needed to serve the model:

* ``config.json``: the format version, the adanet version that wrote it, the architecture
  and its config, the calibrated policy (as :meth:`EarlyExitPolicy.to_dict` writes it), the
  per-exit costs with the input size they were measured at, and the preprocessing (mean, std,
  input size);
* ``model.safetensors`` (when the ``safetensors`` extra is installed) or ``model.pt`` (a bare
  state dict): the weights;
* ``checksums.json``: the SHA-256 of every other file.

:func:`load_pretrained` verifies the checksums, refuses a directory written by a newer format,
rebuilds the model from its config and loads the weights without executing any pickle
(safetensors, or ``torch.load(..., weights_only=True)``). The model comes back in eval mode,
and what else the directory holds is its ``pretrained`` attribute, a :class:`PretrainedInfo`::

    model = adanet.load_pretrained("my-ranet")
    policy = model.pretrained.policy            # EarlyExitPolicy or None
    mean, std = model.pretrained.preprocessing.mean, model.pretrained.preprocessing.std

:class:`EarlyExitHubModel` offers the same through the Hugging Face Hub's ``ModelHubMixin``
conventions (``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``; the ``hub`` extra is
needed only to reach the Hub, not for local directories). :func:`export_run` turns a folder
written by ``adanet train`` into such a directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adanet._atomic import save_torch_atomic, write_bytes_atomic, write_json_atomic
from adanet._safe_load import CheckpointError, read_state_dict
from adanet.costs.counting import measure_exit_costs
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.models.registry import create_model, default_registry
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.serialization import policy_from_dict
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "FORMAT_VERSION",
    "PretrainedError",
    "PretrainedInfo",
    "load_pretrained",
    "save_pretrained",
]

FORMAT_VERSION = 1
"""Version of the directory layout written by :func:`save_pretrained`."""

CONFIG_FILE = "config.json"
CHECKSUM_FILE = "checksums.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "model.pt"

_SAFETENSORS_HINT = "pip install 'adanet-torch[safetensors]'"
_HUB_HINT = "pip install 'adanet-torch[hub]'"


class PretrainedError(ValueError):
    """A model directory that is incomplete, altered, too new or not adanet's."""


def _build_record(model: EarlyExitNetwork) -> dict[str, Any]:
    """What ``config.json`` records to rebuild ``model``: a registered architecture and its
    config, or the registered model name and arguments :func:`adanet.create_model` used.

    Raises:
        TypeError: Neither applies, or the arguments are not JSON values.
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


def _rebuild(record: Mapping[str, Any], where: Path) -> EarlyExitNetwork:
    """The network ``config.json``'s record describes, with fresh weights.

    Raises:
        PretrainedError: An unknown architecture or model name, or an invalid config.
    """
    if "model" in record:
        name = str(record["model"])
        if name not in default_registry:
            raise PretrainedError(
                f"{where} holds a {name!r} model, which is not registered: import the module "
                "that registers it (@adanet.models.register_model) before loading"
            )
        arguments = record.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            raise PretrainedError(f"{where}: 'arguments' must be a mapping, got {arguments!r}")
        try:
            return create_model(name, **dict(arguments))
        except (TypeError, ValueError) as error:
            raise PretrainedError(f"{where}: cannot build {name!r}: {error}") from None
    try:
        architecture = default_registry.architecture(str(record.get("arch")))
    except ValueError as error:
        raise PretrainedError(f"{where} holds an unknown architecture: {error}") from None
    try:
        config = architecture.config_cls.from_dict(record["config"])
    except (TypeError, ValueError, KeyError) as error:
        raise PretrainedError(
            f"{where} holds an invalid {architecture.name} config: {error}"
        ) from None
    return architecture.build(config)


# ------------------------------------------------------------------ what travels with a model


def _input_size(value: Any) -> tuple[int, int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"input_size must be (C, H, W), got {value!r}")
    try:
        size = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (C, H, W), got {value!r}") from None
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input_size must be three positive integers (C, H, W), got {value!r}")
    return size[0], size[1], size[2]


@dataclass(frozen=True)
class PretrainedInfo:
    """What a model directory holds besides the network (``model.pretrained``).

    Attributes:
        arch: Architecture name (``"RANet"``, ``"MSDNet"``) or registered model name.
        policy: The calibrated early-exit policy, if one was saved.
        preprocessing: Mean, std and input size, if saved.
        costs: Cumulative MACs of each exit for one image of ``costs_input_size``.
        costs_input_size: ``(C, H, W)`` the costs were measured at.
        adanet_version: Version of adanet that wrote the directory.
        format_version: Layout version of the directory.
    """

    arch: str
    policy: EarlyExitPolicy | PatienceExitPolicy | None
    preprocessing: PretrainedCfg | None
    costs: tuple[float, ...]
    costs_input_size: tuple[int, int, int]
    adanet_version: str
    format_version: int


def _as_preprocessing(value: PretrainedCfg | Mapping[str, Any] | None) -> PretrainedCfg | None:
    if value is None or isinstance(value, PretrainedCfg):
        return value
    if isinstance(value, Mapping):
        return PretrainedCfg.from_dict(value)
    raise TypeError(
        f"preprocessing must be an adanet.PretrainedCfg or a mapping with mean, std and "
        f"input_size, "
        f"got {type(value).__name__}"
    )


# ------------------------------------------------------------------ files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _has_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _adanet_version() -> str:
    from adanet import __version__

    return __version__


# ------------------------------------------------------------------ save / load


def save_pretrained(
    model: EarlyExitNetwork,
    directory: str | os.PathLike[str],
    policy: EarlyExitPolicy | PatienceExitPolicy | None = None,
    preprocessing: PretrainedCfg | Mapping[str, Any] | None = None,
    *,
    input_size: Sequence[int] | None = None,
    safetensors: bool | None = None,
) -> Path:
    """Write ``model`` and what serving it needs into ``directory``.

    Args:
        model: A network of a registered architecture (:class:`~adanet.RANet`,
            :class:`~adanet.MSDNet`), or one built by :func:`adanet.create_model` from a
            registered name (``@register_model``), whose arguments are recorded.
        directory: Created if missing; files already there with the same names are replaced.
        policy: The calibrated policy; defaults to ``model.pretrained.policy`` for a model
            from :func:`load_pretrained`.
        preprocessing: An :class:`~adanet.PretrainedCfg` or a mapping with ``mean``, ``std`` and
            ``input_size``; defaults as ``policy``.
        input_size: ``(C, H, W)`` to measure the per-exit costs at; defaults to the
            preprocessing's input size.
        safetensors: Write ``model.safetensors`` (True) or ``model.pt`` (False); by default
            safetensors when the ``safetensors`` extra is installed.

    Returns:
        The directory.

    Raises:
        TypeError: ``model`` was built neither from a registered architecture nor by
            :func:`adanet.create_model`, or ``policy`` is not an EarlyExitPolicy.
        ValueError: The policy does not fit the model, no input size is known, or bad
            preprocessing values.
        ImportError: ``safetensors=True`` without the extra installed.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"save_pretrained saves an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    record = _build_record(model)
    arch = str(record["arch"])
    previous: PretrainedInfo | None = getattr(model, "pretrained", None)
    if policy is None and previous is not None:
        policy = previous.policy
    prep = _as_preprocessing(preprocessing)
    if prep is None and previous is not None:
        prep = previous.preprocessing
    if prep is None:
        prep = model.pretrained_cfg
    if policy is not None:
        if not isinstance(policy, EarlyExitPolicy | PatienceExitPolicy):
            raise TypeError(
                "policy must be an EarlyExitPolicy or PatienceExitPolicy (saved as JSON), got "
                f"{type(policy).__name__}"
            )
        if policy.num_exits != model.num_exits:
            raise ValueError(
                f"the policy has {policy.num_exits} thresholds but the model has "
                f"{model.num_exits} exits"
            )
    if input_size is not None:
        size = _input_size(input_size)
    elif prep is not None:
        size = prep.input_size
    elif previous is not None:
        size = previous.costs_input_size
    else:
        raise ValueError(
            "save_pretrained needs the input size to measure the exits' costs at: pass "
            "input_size=(C, H, W) or preprocessing"
        )
    use_safetensors = _has_safetensors() if safetensors is None else bool(safetensors)
    if use_safetensors and not _has_safetensors():
        raise ImportError(f"writing safetensors needs the 'safetensors' extra: {_SAFETENSORS_HINT}")

    # Contiguous, unshared CPU copies: safetensors refuses views and shared storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with torch.device("meta"):  # only the names are compared: allocate nothing
        rebuilt = _rebuild(record, Path(directory) / CONFIG_FILE).state_dict()
    if set(rebuilt) != set(state):
        # E.g. an optimize_for_inference copy: its BatchNorms are folded away, so the
        # directory could not be loaded into the architecture its config describes.
        raise ValueError(
            f"this {arch}'s weights do not match a {arch} built from its config (is it an "
            "optimize_for_inference copy?); save the original model"
        )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    costs = [float(c.macs) for c in measure_exit_costs(model, size)]
    if use_safetensors:
        from safetensors.torch import save as safetensors_bytes

        weights = SAFETENSORS_FILE
        write_bytes_atomic(target / weights, safetensors_bytes(state))
        stale = target / TORCH_FILE
    else:
        weights = TORCH_FILE
        save_torch_atomic(state, target / weights)
        stale = target / SAFETENSORS_FILE
    if stale.exists():  # a previous save in the other format would be ambiguous
        stale.unlink()
    config: dict[str, Any] = {
        "format": "adanet-pretrained",
        "format_version": FORMAT_VERSION,
        "adanet_version": _adanet_version(),
        **record,
        "num_exits": model.num_exits,
        "weights": weights,
        "policy": policy.to_dict() if policy is not None else None,
        "costs": {"convention": "actual", "input_size": list(size), "macs": costs},
        "preprocessing": prep.to_dict() if prep is not None else None,
    }
    write_json_atomic(target / CONFIG_FILE, config)
    checksums = {name: _sha256(target / name) for name in (CONFIG_FILE, weights)}
    write_json_atomic(
        target / CHECKSUM_FILE,
        {"format_version": FORMAT_VERSION, "algorithm": "sha256", "files": checksums},
    )
    return target


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PretrainedError(f"cannot read {path}: {error}") from None


def _check_version(value: Any, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PretrainedError(f"{where} has no integer format_version (found {value!r})")
    if value > FORMAT_VERSION:
        raise PretrainedError(
            f"{where.parent} was written in format version {value}, newer than this adanet "
            f"reads (up to {FORMAT_VERSION}); upgrade adanet to load it"
        )
    return value


def _verify(directory: Path) -> dict[str, str]:
    checksum_path = directory / CHECKSUM_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"no model directory at {directory}")
    if not checksum_path.is_file():
        raise PretrainedError(
            f"{directory} is not a complete adanet model directory: {CHECKSUM_FILE} is missing"
        )
    record = _read_json(checksum_path)
    if not isinstance(record, Mapping) or not isinstance(record.get("files"), Mapping):
        raise PretrainedError(f"{checksum_path} is malformed: expected a 'files' mapping")
    _check_version(record.get("format_version"), checksum_path)
    files = {str(k): str(v) for k, v in record["files"].items()}
    for name, expected in files.items():
        path = directory / name
        if Path(name).name != name:
            raise PretrainedError(f"{checksum_path} names a file outside the directory: {name!r}")
        if not path.is_file():
            raise PretrainedError(f"{directory} is incomplete: {name} is missing")
        actual = _sha256(path)
        if actual != expected:
            raise PretrainedError(
                f"{path} was altered or corrupted: its SHA-256 is {actual}, the directory "
                f"records {expected}; refusing to load it"
            )
    if CONFIG_FILE not in files:
        raise PretrainedError(f"{checksum_path} does not cover {CONFIG_FILE}")
    return files


def _load_weights(path: Path) -> dict[str, Tensor]:
    if path.name == SAFETENSORS_FILE:
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(
                f"{path} holds safetensors weights; install the extra: {_SAFETENSORS_HINT}"
            ) from None
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as error:  # safetensors raises its own error types
            raise PretrainedError(f"cannot read {path}: {error}") from None
    try:
        return read_state_dict(path)  # torch.load(weights_only=True)
    except CheckpointError as error:
        raise PretrainedError(str(error)) from None


def load_pretrained(directory: str | os.PathLike[str]) -> EarlyExitNetwork:
    """Rebuild the model saved by :func:`save_pretrained`.

    Every file is checked against ``checksums.json`` first; weights are read with safetensors
    or ``torch.load(weights_only=True)``, so no pickle runs.

    Args:
        directory: The model directory.

    Returns:
        The model, in eval mode, on the CPU. ``model.pretrained`` is a
        :class:`PretrainedInfo` with the policy, preprocessing, costs and versions.

    Raises:
        FileNotFoundError: No such directory.
        PretrainedError: A missing or altered file, a newer format version, an unknown
            architecture, or weights that do not fit the config.
        ImportError: Safetensors weights without the ``safetensors`` extra.
    """
    root = Path(directory)
    files = _verify(root)
    config = _read_json(root / CONFIG_FILE)
    if not isinstance(config, Mapping) or config.get("format") != "adanet-pretrained":
        raise PretrainedError(f"{root / CONFIG_FILE} is not an adanet model config")
    version = _check_version(config.get("format_version"), root / CONFIG_FILE)
    arch = str(config.get("arch"))
    weights = str(config.get("weights"))
    if weights not in files:
        raise PretrainedError(f"{root / CHECKSUM_FILE} does not cover the weights {weights!r}")
    model = _rebuild(config, root / CONFIG_FILE)
    state = _load_weights(root / weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise PretrainedError(
            f"the weights in {root / weights} do not fit the {arch} config: {str(error)[:300]}"
        ) from None
    model.eval()
    raw_policy = config.get("policy")
    raw_prep = config.get("preprocessing")
    costs = config.get("costs") or {}
    info = PretrainedInfo(
        arch=arch,
        policy=policy_from_dict(raw_policy) if raw_policy is not None else None,
        preprocessing=PretrainedCfg.from_dict(raw_prep) if raw_prep is not None else None,
        costs=tuple(float(c) for c in costs.get("macs", ())),
        costs_input_size=_input_size(costs.get("input_size", (1, 1, 1))),
        adanet_version=str(config.get("adanet_version", "")),
        format_version=version,
    )
    model.pretrained = info  # type: ignore[assignment]
    if info.preprocessing is not None:
        model.pretrained_cfg = info.preprocessing
    return model
