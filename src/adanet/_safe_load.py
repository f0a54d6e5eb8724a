"""Reading checkpoints safely: ``torch.load`` restricted to weights, with clear errors."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["CheckpointError", "load_weights_only", "read_state_dict"]


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
