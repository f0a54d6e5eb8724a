"""Loading a checkpoint written by the original RANet or MSDNet scripts into an adanet model."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from adanet._safe_load import CheckpointError, read_state_dict
from adanet.compat.formats import find_reference_format

__all__ = ["load_reference_checkpoint"]


def _count_indices(keys: Any, prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = {int(m.group(1)) for key in keys for m in [pattern.match(key)] if m}
    return max(found) + 1 if found else 0


def _describe_mismatch(
    model_state: Mapping[str, Tensor], loaded: Mapping[str, Tensor], limit: int = 6
) -> str:
    problems: list[str] = []
    for prefix, noun in (("exits", "exits"), ("branches", "scale branches"), ("blocks", "blocks")):
        ours, theirs = _count_indices(model_state, prefix), _count_indices(loaded, prefix)
        if ours != theirs:
            problems.append(f"the checkpoint has {theirs} {noun}, the model {ours}")
    shape_problems: list[str] = []
    for key, tensor in model_state.items():
        other = loaded.get(key)
        if other is None or other.shape == tensor.shape:
            continue
        head = re.match(r"^exits\.(\d+)\.classifier\.weight$", key)
        if head:
            shape_problems.append(
                f"exit {head.group(1)} has {other.shape[0]} classes in the checkpoint, "
                f"{tensor.shape[0]} in the model"
            )
        else:
            shape_problems.append(
                f"{key} is {tuple(other.shape)} in the checkpoint, {tuple(tensor.shape)} in "
                "the model"
            )
    problems += shape_problems[:limit]
    if len(shape_problems) > limit:
        problems.append(f"... and {len(shape_problems) - limit} more tensors of other shapes")
    missing = [k for k in model_state if k not in loaded]
    unexpected = [k for k in loaded if k not in model_state]
    if missing:
        problems.append(
            f"{len(missing)} model tensors are not in the checkpoint, e.g. {missing[:3]}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} checkpoint tensors have no place in the model, e.g. "
            f"{unexpected[:3]}"
        )
    return "; ".join(problems)


def load_reference_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a checkpoint written by the original RANet or MSDNet scripts into ``model``.

    The file is read with ``torch.load(..., weights_only=True)`` only. Parameter names are
    translated by the original format registered for the model's class in
    :mod:`adanet.compat` (RANet's and MSDNet's are), so the originals' layouts map onto
    adanet's modules; other models load the names as they are.

    Args:
        model: The adanet model, built with the checkpoint's configuration (e.g. from
            :func:`adanet.compat.read_reference_config` on the run's ``args.txt``).
        path: The ``.pth.tar`` file (a dict with ``state_dict``, keys prefixed
            ``module.``), or a bare state dict.

    Returns:
        ``model``, with the weights loaded.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        FileNotFoundError: No such file.
        CheckpointError: Unreadable, truncated or unsafe file, or one made for another
            configuration; the message says what disagrees.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    state = read_state_dict(path)
    fmt = find_reference_format(model)
    if fmt is not None:
        state = {fmt.translate_key(model, key): value for key, value in state.items()}
    model_state = model.state_dict()
    mismatch = _describe_mismatch(model_state, state)
    if mismatch:
        raise CheckpointError(f"{os.fspath(path)!r} was made for another configuration: {mismatch}")
    model.load_state_dict(state, strict=True)
    return model
