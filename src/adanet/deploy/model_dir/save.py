"""``save_pretrained``: write a model directory, all or nothing."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from adanet._atomic import replace_directory, write_bytes_atomic
from adanet._validation import parse_input_size
from adanet.costs.counting import measure_exit_costs
from adanet.deploy.metadata import (
    check_policy_for,
    check_preprocessing,
    check_state_matches,
    parse_json,
)
from adanet.deploy.model_dir.layout import (
    CHECKSUM_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    SAFETENSORS_FILE,
    TORCH_FILE,
    PretrainedInfo,
    check_replaceable,
    checksum_document,
)
from adanet.deploy.model_dir.record import CONFIG_FORMAT, build_record, check_config, rebuild
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["SAFETENSORS_HINT", "as_preprocessing", "save_pretrained"]

SAFETENSORS_HINT = "pip install 'adanet-torch[safetensors]'"


def as_preprocessing(value: PretrainedCfg | Mapping[str, Any] | None) -> PretrainedCfg | None:
    """``value`` as a :class:`PretrainedCfg` (``None`` stays ``None``).

    Raises:
        TypeError: Neither a PretrainedCfg, a mapping nor ``None``.
        ValueError: Invalid fields.
    """
    if value is None or isinstance(value, PretrainedCfg):
        return value
    if isinstance(value, Mapping):
        return PretrainedCfg.from_dict(value)
    raise TypeError(
        f"preprocessing must be an adanet.PretrainedCfg or a mapping with mean, std and "
        f"input_size, got {type(value).__name__}"
    )


def has_safetensors() -> bool:
    """Whether the ``safetensors`` extra is installed."""
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _adanet_version() -> str:
    from adanet import __version__

    return __version__


def _serving_size(
    model: EarlyExitNetwork,
    input_size: Sequence[int] | None,
    prep: PretrainedCfg | None,
    previous: PretrainedInfo | None,
) -> tuple[int, int, int]:
    if input_size is not None:
        c, h, w = parse_input_size(input_size, model.in_channels)
        if prep is not None and (c, h, w) != prep.input_size:
            raise ValueError(
                f"input_size {list(input_size)} differs from the preprocessing's input_size "
                f"{list(prep.input_size)}: a directory records one size the model is served at"
            )
        return c, h, w
    if prep is not None:
        return prep.input_size
    if previous is not None:
        return previous.costs_input_size
    raise ValueError(
        "save_pretrained needs the input size to measure the exits' costs at: pass "
        "input_size=(C, H, W) or preprocessing"
    )


def _weights_bytes(state: dict[str, torch.Tensor], use_safetensors: bool) -> bytes:
    if use_safetensors:
        from safetensors.torch import save as safetensors_bytes

        return bytes(safetensors_bytes(state))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _checked_state(model: EarlyExitNetwork, record: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    # Contiguous, unshared CPU copies: safetensors refuses views and shared storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    arch = str(record["arch"])
    expected = rebuild(record, f"the {arch} record", meta=True).state_dict()
    if set(expected) != set(state):
        # E.g. an optimize_for_inference copy: its BatchNorms are folded away, so the
        # directory could not be loaded into the architecture its config describes.
        raise ValueError(
            f"this {arch}'s weights do not match a {arch} built from its config (is it an "
            "optimize_for_inference copy?); save the original model"
        )
    check_state_matches(expected, state, f"this {arch}", ValueError)
    return state


def save_pretrained(
    model: EarlyExitNetwork,
    directory: str | os.PathLike[str],
    policy: EarlyExitPolicy | PatienceExitPolicy | None = None,
    preprocessing: PretrainedCfg | Mapping[str, Any] | None = None,
    *,
    input_size: Sequence[int] | None = None,
    safetensors: bool | None = None,
) -> Path:
    """Write ``model`` and what serving it needs into ``directory``, all or nothing.

    Everything is checked, and every file's bytes made, before anything is written. The files
    then go into a fresh folder beside ``directory`` that replaces it in one swap (see
    :func:`adanet._atomic.replace_directory`): a reader, or a crash at any point, sees the whole
    old directory or the whole new one.

    Args:
        model: A network of a registered architecture (:class:`~adanet.RANet`,
            :class:`~adanet.MSDNet`), or one built by :func:`adanet.create_model` from a
            registered name (``@register_model``), whose arguments are recorded.
        directory: Created if missing. An existing one is replaced whole, so it may hold only a
            model directory's files (``config.json``, ``checksums.json``, ``model.safetensors``,
            ``model.pt``): anything else is refused rather than deleted.
        policy: The calibrated policy; defaults to ``model.pretrained.policy`` for a model
            from :func:`load_pretrained`. It must fit the model (its exits, and the classes
            and input size it records).
        preprocessing: An :class:`~adanet.PretrainedCfg` or a mapping with ``mean``, ``std`` and
            ``input_size``, for the model's channels; defaults as ``policy``.
        input_size: ``S``, ``(H, W)`` or ``(C, H, W)`` to measure the per-exit costs at;
            defaults to the preprocessing's input size, and must equal it when both are given.
        safetensors: Write ``model.safetensors`` (True) or ``model.pt`` (False); by default
            safetensors when the ``safetensors`` extra is installed.

    Returns:
        The directory.

    Raises:
        TypeError: ``model`` was built neither from a registered architecture nor by
            :func:`adanet.create_model`, its config holds a callable, or ``policy`` is not an
            EarlyExitPolicy or PatienceExitPolicy.
        ValueError: The policy or preprocessing does not fit the model, no input size is
            known, or bad values.
        PretrainedError: ``directory`` holds files other than a model directory's.
        ImportError: ``safetensors=True`` without the extra installed.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"save_pretrained saves an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    record = build_record(model)
    previous: PretrainedInfo | None = getattr(model, "pretrained", None)
    if policy is None and previous is not None:
        policy = previous.policy
    prep = as_preprocessing(preprocessing)
    if prep is None and previous is not None:
        prep = previous.preprocessing
    if prep is None:
        prep = model.pretrained_cfg
    prep = check_preprocessing(
        prep, channels=model.in_channels, where="preprocessing", error=ValueError
    )
    size = _serving_size(model, input_size, prep, previous)
    if policy is not None:
        check_policy_for(model, policy, size)
    use_safetensors = has_safetensors() if safetensors is None else bool(safetensors)
    if use_safetensors and not has_safetensors():
        raise ImportError(f"writing safetensors needs the 'safetensors' extra: {SAFETENSORS_HINT}")
    weights = SAFETENSORS_FILE if use_safetensors else TORCH_FILE
    weights_bytes = _weights_bytes(_checked_state(model, record), use_safetensors)
    costs = [float(c.macs) for c in measure_exit_costs(model, size)]
    config: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "format_version": FORMAT_VERSION,
        "adanet_version": _adanet_version(),
        **record,
        "num_exits": model.num_exits,
        "weights": weights,
        "policy": policy.to_dict() if policy is not None else None,
        "costs": {"convention": "actual", "input_size": list(size), "macs": costs},
        "preprocessing": prep.to_dict() if prep is not None else None,
    }
    config_bytes = (json.dumps(config, indent=2, allow_nan=False) + "\n").encode("utf-8")
    # The one validator the loader runs, on the very bytes about to be written.
    check_config(parse_json(config_bytes, CONFIG_FILE, ValueError), CONFIG_FILE, model)
    files = {CONFIG_FILE: config_bytes, weights: weights_bytes}
    checksums = json.dumps(checksum_document(files), indent=2) + "\n"
    with replace_directory(directory, check_existing=check_replaceable) as fresh:
        for name, payload in files.items():
            write_bytes_atomic(fresh / name, payload)
        write_bytes_atomic(fresh / CHECKSUM_FILE, checksums.encode("utf-8"))
    return Path(directory)
