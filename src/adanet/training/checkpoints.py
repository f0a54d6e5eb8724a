"""Checkpoints and the run state they carry: atomic saves, exact resumption."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from adanet._atomic import save_torch_atomic
from adanet._safe_load import CheckpointError, load_weights_only
from adanet.training.loop import unwrap_model

__all__ = [
    "BEST_MODEL",
    "CHECKPOINT_FORMAT",
    "LAST_CHECKPOINT",
    "MODEL_FORMAT",
    "TrainState",
    "capture_rng_state",
    "load_checkpoint",
    "make_checkpoint",
    "restore_rng_state",
    "resume",
    "save_checkpoint",
]

LAST_CHECKPOINT = "checkpoint_last.pt"
"""File name of the checkpoint written after every epoch."""

BEST_MODEL = "model_best.pt"
"""File name of the best model (weights, config and arch; no optimizer)."""

CHECKPOINT_FORMAT = "adanet-train-1"
"""Value of a training checkpoint's ``"format"`` entry."""

MODEL_FORMAT = "adanet-model-1"
"""Value of a best-model file's ``"format"`` entry."""


@dataclass
class TrainState:
    """Progress of a run, saved in every checkpoint.

    Attributes:
        next_epoch: The epoch to run next (0-based; the number of epochs done).
        best: Best final-exit validation top-1 so far (-inf before the first epoch).
        best_epoch: Epoch of ``best`` (-1 before the first epoch).
        history: One record per finished epoch (see :func:`fit`).
    """

    next_epoch: int = 0
    best: float = -math.inf
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


def _numpy_state() -> dict[str, Any] | None:
    try:
        import numpy as np
    except ImportError:
        return None
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    # Tensors, not arrays: weights_only loading accepts tensors and plain values only.
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(state: Mapping[str, Any] | None) -> None:
    if state is None:
        return
    try:
        import numpy as np
    except ImportError:
        return
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def capture_rng_state(loader: object | None = None) -> dict[str, Any]:
    """Every random state a training step draws from.

    Args:
        loader: The training loader; its shuffling ``generator`` is included when it has one.

    Returns:
        A dict that :func:`restore_rng_state` reads (and ``torch.load(weights_only=True)`` can).
    """
    generator = getattr(loader, "generator", None)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "loader": generator.get_state() if isinstance(generator, torch.Generator) else None,
    }


def restore_rng_state(state: Mapping[str, Any], loader: object | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured.

    CUDA states are restored only when the device count matches the saved one.
    """
    torch.set_rng_state(state["torch"])
    cuda_states = list(state.get("cuda") or [])
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    python_state = state.get("python")
    if python_state is not None:
        version, internal, gauss = python_state
        random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state.get("numpy"))
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator) and state.get("loader") is not None:
        generator.set_state(state["loader"])


def make_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    *,
    scaler: Any = None,
    arch: str = "",
    config: Mapping[str, Any] | None = None,
    loader: object | None = None,
) -> dict[str, Any]:
    """Everything needed to resume: weights, optimizer, scaler, progress, config, RNG states.

    Args:
        model: The model (a DDP wrapper is looked through, so keys have no ``module.``).
        optimizer: The optimizer.
        state: The run's progress.
        scaler: The GradScaler, if any.
        arch: Architecture name (``"RANet"``, ``"msdnet"``).
        config: The model config as a dict (``config.to_dict()``).
        loader: The training loader, for its shuffling generator.

    Returns:
        A dict of tensors and plain values, loadable with ``weights_only=True``.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": state.next_epoch - 1,
        "next_epoch": state.next_epoch,
        "best": state.best,
        "best_epoch": state.best_epoch,
        "history": list(state.history),
        "arch": arch,
        "config": dict(config) if config is not None else None,
        "rng": capture_rng_state(loader),
    }


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``checkpoint`` atomically (temporary file, then rename): an interrupted save
    leaves the previous file intact."""
    save_torch_atomic(dict(checkpoint), path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)`` onto the CPU.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Unreadable or not a dict.
    """
    loaded = load_weights_only(path)
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{os.fspath(path)!r} is not a training checkpoint (not a dict)")
    return loaded


def resume(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    scaler: Any = None,
    loader: object | None = None,
    restore_rng: bool = True,
) -> TrainState:
    """Load a checkpoint written by :func:`fit` into ``model``/``optimizer``/``scaler``.

    Call it after building the model, optimizer and loaders (building draws random numbers;
    the restored RNG states then replace them), right before :func:`fit`.

    Args:
        path: The checkpoint (usually ``<save>/checkpoint_last.pt``).
        model: The model, built with the checkpoint's config.
        optimizer: The optimizer, or ``None`` to load the weights only.
        scaler: The GradScaler, if the run uses one.
        loader: The training loader, whose shuffling generator is restored.
        restore_rng: Restore the RNG states too (needed for an exact continuation).

    Returns:
        The saved :class:`TrainState`; pass it to :func:`fit` as ``state``.

    Raises:
        CheckpointError: Not a training checkpoint, or one made for another model.
    """
    checkpoint = load_checkpoint(path)
    if checkpoint.get("format") != CHECKPOINT_FORMAT or "model" not in checkpoint:
        raise CheckpointError(
            f"{os.fspath(path)!r} is not an adanet training checkpoint (no {CHECKPOINT_FORMAT!r}"
            " format marker)"
        )
    try:
        unwrap_model(model).load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{os.fspath(path)!r} was made for another model: {str(error).splitlines()[0]}"
        ) from None
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scaler is not None and checkpoint.get("scaler") is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    if restore_rng and checkpoint.get("rng") is not None:
        restore_rng_state(checkpoint["rng"], loader)
    return TrainState(
        next_epoch=int(checkpoint["next_epoch"]),
        best=float(checkpoint["best"]),
        best_epoch=int(checkpoint["best_epoch"]),
        history=list(checkpoint.get("history") or []),
    )
