"""Reading checkpoints and folder contents safely.

* :func:`load_weights_only` / :func:`read_state_dict`: ``torch.load`` restricted to weights,
  with clear errors.
* :func:`read_confined`: the bytes of one file of a folder, by a plain name, never through a
  symbolic link, read once so that what is checked is what is used.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CheckpointError",
    "check_plain_name",
    "load_weights_bytes",
    "load_weights_only",
    "read_confined",
    "read_state_dict",
    "state_dict_from",
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
    return _torch_load(location, location)


def load_weights_bytes(payload: bytes, where: str) -> Any:
    """:func:`load_weights_only` for a checkpoint already read into memory (``where`` names it
    in errors).

    Raises:
        CheckpointError: As :func:`load_weights_only`.
    """
    return _torch_load(io.BytesIO(payload), where)


def _torch_load(source: str | io.BytesIO, location: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
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
    return state_dict_from(load_weights_only(path), os.fspath(path))


def state_dict_from(loaded: Any, where: str) -> dict[str, Tensor]:
    """The state dict inside what :func:`load_weights_only` returned (see
    :func:`read_state_dict`; ``where`` names the file in errors).

    Raises:
        CheckpointError: No state dict inside.
    """
    state: Any = loaded
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if key in loaded and isinstance(loaded[key], Mapping):
                state = loaded[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{where!r} holds no state dict")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if len(tensors) != len(state):
        raise CheckpointError(
            f"{where!r} holds no state dict: a state dict maps names to tensors "
            f"(found keys such as {list(state)[:5]})"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in tensors.items()}


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_plain_name(name: object) -> str | None:
    """Why ``name`` is not a plain file name inside a folder, or ``None`` when it is one.

    A plain name is letters, digits, ``_``, ``-`` and ``.``, not starting with a dot: no
    folder separator, no ``..``, no absolute path, no drive, no hidden file.
    """
    if not isinstance(name, str):
        return f"a file name must be a string, got {name!r}"
    if not _PLAIN_NAME.match(name) or ".." in name or len(name) > 255:
        return (
            f"{name!r} is not a plain file name inside the folder (letters, digits, '_', '-' "
            "and '.', no path separator or '..')"
        )
    return None


def read_confined(
    folder: str | os.PathLike[str],
    name: str,
    *,
    max_bytes: int,
    error: Callable[[str], Exception] = CheckpointError,
) -> bytes:
    """The bytes of the regular file ``name`` directly inside ``folder``.

    The file is opened without following a symbolic link (``O_NOFOLLOW``) and read once:
    callers check and use these same bytes, so nothing can be swapped in between.

    Args:
        folder: The folder.
        name: A plain file name (see :func:`check_plain_name`).
        max_bytes: Refuse a larger file (a JSON document has no business being gigabytes).
        error: Builds the exception raised for a refused name or file, from its message.

    Raises:
        FileNotFoundError: No such file.
        Exception: ``error(message)`` for a name that is not plain, a symbolic link, something
            other than a regular file, or a file over ``max_bytes``.
    """
    problem = check_plain_name(name)
    if problem is not None:
        raise error(f"{os.fspath(folder)}: {problem}")
    path = os.path.join(os.fspath(folder), name)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not block the open
    if os.path.islink(path):
        raise error(f"{path} is a symbolic link; refusing to follow it out of the folder")
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except OSError as failure:
        raise error(f"cannot open {path}: {failure.strerror}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise error(f"{path} is not a regular file")
    with os.fdopen(descriptor, "rb") as stream:
        if status.st_size > max_bytes:
            raise error(f"{path} is {status.st_size} bytes, more than the {max_bytes} allowed")
        payload = stream.read(max_bytes + 1)
    if len(payload) > max_bytes:
        raise error(f"{path} grew past the {max_bytes} bytes allowed while being read")
    return payload
