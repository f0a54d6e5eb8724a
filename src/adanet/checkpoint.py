"""Checkpoint I/O: loading the originals' checkpoints safely, and saving atomically."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CheckpointError",
    "load_reference_checkpoint",
    "load_weights_only",
    "read_state_dict",
    "save_atomic",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


def load_weights_only(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clear errors.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: No such file, or a directory.
        CheckpointError: A truncated or foreign file, or one holding objects whose
            unpickling could run code.
    """
    # weights_only=True restricts unpickling to tensors and plain containers, so a crafted
    # file cannot run code; anything else is refused, never retried without it.
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a checkpoint path (str or os.PathLike), got {path!r}")
    location = os.fspath(path)
    if os.path.isdir(location):
        raise FileNotFoundError(f"{location!r} is a directory, not a checkpoint file")
    if not os.path.isfile(location):
        raise FileNotFoundError(f"no checkpoint at {location!r}")
    try:
        return torch.load(location, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message carries terminal colour codes; keep its first line, plain.
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first_line = text.splitlines()[0] if text else ""
        raise CheckpointError(
            f"refusing to load {location!r}: it holds objects other than tensors, numbers, "
            f"strings and containers, and loading them could run code ({first_line})"
        ) from None
    except Exception as error:
        # torch.load fails on foreign files with whatever its parser hits first (RuntimeError,
        # EOFError, KeyError on a text file, UnicodeDecodeError, ...): all mean "not a
        # checkpoint", so all get the same clear error.
        raise CheckpointError(
            f"cannot read {location!r}: the file is truncated or is not a PyTorch checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read the state dict of a checkpoint without building a model.

    Accepts the originals' format (a dict holding ``state_dict``, keys prefixed with
    DataParallel's ``module.``), adanet's own (``model`` or ``state_dict``), and bare state
    dicts. The ``module.`` prefix is removed.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Unreadable, unsafe, or no state dict inside.
    """
    loaded = load_weights_only(path)
    state: Any = loaded
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if key in loaded and isinstance(loaded[key], Mapping):
                state = loaded[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{os.fspath(path)!r} holds no state dict")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if len(tensors) != len(state):
        raise CheckpointError(
            f"{os.fspath(path)!r} holds no state dict: a state dict maps names to tensors "
            f"(found keys such as {list(state)[:5]})"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in tensors.items()}


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
            ``RANetConfig.from_reference_args`` on the run's ``args.txt``).
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
    from .compat import find_reference_format  # compat imports the models

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


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``.

    A crash or a full disk midway leaves the previous file at ``path`` intact.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
