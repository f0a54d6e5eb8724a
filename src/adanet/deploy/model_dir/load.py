"""``load_pretrained``: read a model directory back, checking everything before building."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from torch import Tensor

from adanet._atomic import existing_directory
from adanet._safe_load import CheckpointError, load_weights_bytes, state_dict_from
from adanet.deploy.metadata import (
    MAX_JSON_BYTES,
    bounded_build,
    check_state_matches,
    parse_json,
    state_bytes,
)
from adanet.deploy.model_dir.layout import (
    CONFIG_FILE,
    MAX_WEIGHT_BYTES,
    SAFETENSORS_FILE,
    PretrainedError,
    PretrainedInfo,
    read_checksums,
    read_verified,
)
from adanet.deploy.model_dir.record import check_config, rebuild
from adanet.deploy.model_dir.save import SAFETENSORS_HINT
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.registry import create_model, default_registry

__all__ = ["load_pretrained"]


def _parse_weights(payload: bytes, where: Path) -> dict[str, Tensor]:
    if where.name == SAFETENSORS_FILE:
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise ImportError(
                f"{where} holds safetensors weights; install the extra: {SAFETENSORS_HINT}"
            ) from None
        try:
            return dict(load_safetensors(payload))
        except Exception as error:  # safetensors raises its own error types
            raise PretrainedError(f"cannot read {where}: {error}") from None
    try:
        return state_dict_from(load_weights_bytes(payload, str(where)), str(where))
    except CheckpointError as error:
        raise PretrainedError(str(error)) from None


def _weights_size(root: Path, name: str) -> int:
    try:
        status = os.lstat(root / name)
    except FileNotFoundError:
        raise PretrainedError(f"{root} is incomplete: {name} is missing") from None
    if stat.S_ISLNK(status.st_mode):
        raise PretrainedError(
            f"{root / name} is a symbolic link; refusing to follow it out of the folder"
        )
    if not stat.S_ISREG(status.st_mode):
        raise PretrainedError(f"{root / name} is not a regular file")
    return status.st_size


def _check_expected(arch: str, recorded: str, meta: EarlyExitNetwork, root: Path) -> None:
    """Refuse a directory holding another network than the caller names: an architecture
    (``"MSDNet"``, any case), or a :func:`adanet.create_model` name (``"msdnet_cifar10_anytime"``)
    that builds the architecture or registered model the directory records."""
    if not isinstance(arch, str):
        raise TypeError(f"arch must be an architecture or model name, got {arch!r}")
    if arch.lower() == recorded.lower():
        return
    found = default_registry.architecture_of(meta)
    if arch in default_registry and found is not None:
        named = bounded_build(lambda: create_model(arch), f"create_model({arch!r})", ValueError)
        built = default_registry.architecture_of(named)
        if built is not None and built.name == found.name:
            return
    raise PretrainedError(f"{root} holds a {recorded!r} model, not the {arch!r} asked for")


def load_pretrained(
    directory: str | os.PathLike[str], *, arch: str | None = None
) -> EarlyExitNetwork:
    """Rebuild the model saved by :func:`save_pretrained`.

    Nothing is built before everything is checked: every file is read once, never through a
    symbolic link, and checked against ``checksums.json``; ``config.json`` is validated field by
    field against the network it describes, first built on the meta device within the bounds
    of :mod:`adanet.deploy.metadata` (so a config asking for terabytes allocates nothing); the
    weights must have exactly the names, shapes and dtypes of that network. Weights are read
    with safetensors or ``torch.load(weights_only=True)``, so no pickle runs.

    Args:
        directory: The model directory.
        arch: The network the caller expects: an architecture (``"RANet"``, ``"MSDNet"``), a
            :func:`adanet.create_model` name of one (``"msdnet_cifar10_anytime"``: any preset
            of that architecture), or a registered model name; a directory holding another
            is refused.

    Returns:
        The model, in eval mode, on the CPU. ``model.pretrained`` is a
        :class:`PretrainedInfo` with the policy, preprocessing, costs and versions.

    Raises:
        FileNotFoundError: No such directory.
        PretrainedError: A missing, linked or altered file, a newer format version, an unknown
            architecture or another than ``arch``, invalid metadata, a config beyond the
            bounds, or weights that do not fit the config.
        ImportError: Safetensors weights without the ``safetensors`` extra.
    """
    root = existing_directory(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no model directory at {Path(directory)}")
    checksums = read_checksums(root)
    where = str(root / CONFIG_FILE)
    document = parse_json(
        read_verified(root, CONFIG_FILE, checksums, MAX_JSON_BYTES), where, PretrainedError
    )
    checked, meta = check_config(document, where)
    if arch is not None:
        _check_expected(arch, checked.arch, meta, root)
    expected = meta.state_dict()
    # A config inflated beyond its weights file is refused before anything is allocated.
    if state_bytes(expected) > _weights_size(root, checked.weights):
        raise PretrainedError(
            f"{where} describes a network of {state_bytes(expected)} bytes of weights but "
            f"{checked.weights} holds {_weights_size(root, checked.weights)}; refusing to build it"
        )
    weights_path = root / checked.weights
    state = _parse_weights(
        read_verified(root, checked.weights, checksums, MAX_WEIGHT_BYTES), weights_path
    )
    check_state_matches(expected, state, str(weights_path), PretrainedError)
    model = rebuild(document, where, meta=False)
    model.load_state_dict(state, strict=True)
    model.eval()
    info = PretrainedInfo(
        arch=checked.arch,
        policy=checked.policy,
        preprocessing=checked.preprocessing,
        costs=checked.costs.macs,
        costs_input_size=checked.costs.input_size,
        adanet_version=checked.adanet_version,
        format_version=checked.version,
    )
    model.pretrained = info  # type: ignore[assignment]
    if info.preprocessing is not None:
        model.pretrained_cfg = info.preprocessing
    return model
