"""Training pieces for multi-exit networks, usable in your own loop or through :func:`fit`.

* :func:`learning_rate_at` / :class:`LRSchedule`: the learning-rate schedules of the original
  RANet/MSDNet ``main.py`` (``adjust_learning_rate``): ``"multistep"`` changes once per epoch,
  ``"cosine"`` once per iteration.
* :func:`train_one_epoch`: one pass over the training loader (optional autocast, GradScaler,
  channels-last, a tqdm bar), raising :class:`NonFiniteLossError` before any optimizer step
  that would apply a NaN/inf loss.
* :func:`validate`: loss and per-exit top-1/top-5 accuracy.
* :class:`TrainState`, :func:`make_checkpoint`, :func:`save_checkpoint`,
  :func:`load_checkpoint`, :func:`resume`: atomic checkpoints holding model, optimizer,
  scaler, epoch, best score, config, architecture name and every RNG state (torch, CUDA,
  Python, NumPy and the training loader's shuffling generator), so a resumed single-process
  CPU run with ``workers=0`` reproduces the uninterrupted run bit for bit.
* :func:`fit`: epochs of training and validation, writing ``checkpoint_last.pt`` every epoch
  and ``model_best.pt`` when the final exit's validation top-1 improves.

Works unchanged under DistributedDataParallel: training metrics are summed over processes,
the NaN check is agreed on by every process (so none is left waiting in a collective), and
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from ._device import module_device
from .checkpoint import CheckpointError, load_weights_only, save_atomic
from .distributed import all_reduce_sum, get_rank
from .evaluation import topk_correct

__all__ = [
    "BEST_MODEL",
    "CHECKPOINT_FORMAT",
    "LAST_CHECKPOINT",
    "MODEL_FORMAT",
    "EpochResult",
    "LRSchedule",
    "LRType",
    "LossFunction",
    "NonFiniteLossError",
    "TrainState",
    "ValidationResult",
    "capture_rng_state",
    "fit",
    "learning_rate_at",
    "load_checkpoint",
    "make_checkpoint",
    "restore_rng_state",
    "resume",
    "save_checkpoint",
    "set_learning_rate",
    "train_one_epoch",
    "unwrap_model",
    "validate",
]

LRType = Literal["multistep", "cosine"]
"""Schedules of the original ``adjust_learning_rate``."""

LAST_CHECKPOINT = "checkpoint_last.pt"
"""File name of the checkpoint written after every epoch."""

BEST_MODEL = "model_best.pt"
"""File name of the best model (weights, config and arch; no optimizer)."""

CHECKPOINT_FORMAT = "adanet-train-1"
"""Value of a training checkpoint's ``"format"`` entry."""

MODEL_FORMAT = "adanet-model-1"
"""Value of a best-model file's ``"format"`` entry."""

Batch = Sequence[Tensor]


# --------------------------------------------------------------------------------------------
# Learning rate
# --------------------------------------------------------------------------------------------


def learning_rate_at(
    epoch: int,
    batch_index: int,
    batches_per_epoch: int,
    base_lr: float,
    epochs: int,
    lr_type: LRType = "multistep",
    decay_rate: float = 0.1,
    *,
    step_every: int | None = None,
) -> float:
    """The learning rate of the original ``adjust_learning_rate`` at one iteration.

    * ``"cosine"``: ``0.5 * base_lr * (1 + cos(pi * t / T))`` with
      ``t = (epoch % epochs) * batches_per_epoch + batch_index`` and
      ``T = epochs * batches_per_epoch`` (changes every iteration).
    * ``"multistep"`` (CIFAR rule, the default): ``base_lr`` until half the epochs, then
      ``base_lr * decay_rate``, and ``base_lr * decay_rate**2`` from three quarters on.
    * ``"multistep"`` with ``step_every=30`` (the original's ImageNet rule):
      ``base_lr * decay_rate ** (epoch // step_every)``.

    The original hard-codes ``decay_rate=0.1`` whatever its ``--decay-rate`` says; the default
    here is the same.

    Args:
        epoch: 0-based epoch.
        batch_index: 0-based iteration within the epoch.
        batches_per_epoch: Iterations per epoch.
        base_lr: The initial learning rate (``--lr``).
        epochs: Total epochs of the run (``--epochs``).
        lr_type: ``"multistep"`` or ``"cosine"``.
        decay_rate: Factor of each multistep decay.
        step_every: Epochs between decays for the step-every-N rule; ``None`` for the CIFAR
            rule.

    Returns:
        The learning rate.

    Raises:
        ValueError: On an unknown ``lr_type`` or non-positive ``epochs``/``batches_per_epoch``.
    """
    if epochs < 1 or batches_per_epoch < 1:
        raise ValueError(
            f"epochs and batches_per_epoch must be >= 1, got {epochs} and {batches_per_epoch}"
        )
    if lr_type == "cosine":
        total = epochs * batches_per_epoch
        current = (epoch % epochs) * batches_per_epoch + batch_index
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * current / total))
    if lr_type == "multistep":
        if step_every is not None:
            if step_every < 1:
                raise ValueError(f"step_every must be >= 1, got {step_every}")
            return base_lr * decay_rate ** (epoch // step_every)
        if epoch >= epochs * 0.75:
            return base_lr * decay_rate**2
        if epoch >= epochs * 0.5:
            return base_lr * decay_rate
        return base_lr
    raise ValueError(f"unknown lr_type {lr_type!r}; expected 'multistep' or 'cosine'")


@dataclass(frozen=True)
class LRSchedule:
    """:func:`learning_rate_at` with the run's constants bound; call it with
    ``(epoch, batch_index, batches_per_epoch)``.

    Attributes:
        base_lr: Initial learning rate.
        epochs: Total epochs.
        lr_type: ``"multistep"`` or ``"cosine"``.
        decay_rate: Factor of each multistep decay.
        step_every: Epochs between decays (ImageNet rule), or ``None`` (CIFAR rule).
    """

    base_lr: float
    epochs: int
    lr_type: LRType = "multistep"
    decay_rate: float = 0.1
    step_every: int | None = None

    def __call__(self, epoch: int, batch_index: int, batches_per_epoch: int) -> float:
        """The learning rate at this iteration."""
        return learning_rate_at(
            epoch,
            batch_index,
            batches_per_epoch,
            self.base_lr,
            self.epochs,
            self.lr_type,
            self.decay_rate,
            step_every=self.step_every,
        )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` in every parameter group, as the original does each iteration."""
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------------------------
# One epoch
# --------------------------------------------------------------------------------------------


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; raised before the optimizer step.

    Attributes:
        epoch: 0-based epoch.
        batch_index: 0-based iteration within the epoch.
        value: The loss value on this process (may be finite when another process's was not).
    """

    def __init__(self, epoch: int, batch_index: int, num_batches: int, value: float) -> None:
        self.epoch = epoch
        self.batch_index = batch_index
        self.value = value
        super().__init__(
            f"non-finite training loss (loss={value}) at epoch {epoch}, batch "
            f"{batch_index + 1}/{num_batches}; stopped before the optimizer step, so the "
            "weights and the last saved checkpoint are untouched. Try a lower learning rate "
            "(--lr), or bf16 instead of fp16 autocast."
        )


LossFunction = Callable[[list[Tensor], Tensor], Tensor]
"""A loss over a multi-exit model's list of logits, e.g. :class:`adanet.losses.MultiExitLoss`."""


@dataclass(frozen=True)
class EpochResult:
    """Training metrics of one epoch, summed over all processes.

    Attributes:
        loss: Mean training loss per sample (batches weighted by size, as the original).
        exit_top1: Training top-1 accuracy of each exit, fractions in [0, 1].
        lr: The learning rate of the epoch's first iteration.
        num_samples: Samples seen by all processes together.
    """

    loss: float
    exit_top1: tuple[float, ...]
    lr: float
    num_samples: int


@dataclass(frozen=True)
class ValidationResult:
    """Loss and per-exit accuracy over an evaluation loader.

    Attributes:
        loss: Mean loss per sample.
        exit_top1: Top-1 accuracy of each exit, fractions in [0, 1].
        exit_top5: Top-5 accuracy of each exit (k capped at the number of classes).
        num_samples: Samples evaluated.
    """

    loss: float
    exit_top1: tuple[float, ...]
    exit_top5: tuple[float, ...]
    num_samples: int


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (or ``model``)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _progress_enabled(progress: bool) -> bool:
    # A bar in a log file is noise, and every rank drawing one garbles the terminal.
    return progress and get_rank() == 0 and sys.stderr.isatty()


def _with_progress(
    loader: Iterable[Batch], enabled: bool, description: str, total: int
) -> tuple[Iterable[Batch], Any]:
    if not enabled:
        return loader, None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar then
        return loader, None
    bar = tqdm(loader, total=total, desc=description, leave=False, dynamic_ncols=True)
    return bar, bar


def _autocast(
    device: torch.device, amp_dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _prepare(
    images: Tensor, targets: Tensor, device: torch.device, channels_last: bool
) -> tuple[Tensor, Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=True)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFunction,
    *,
    epoch: int,
    lr_schedule: Callable[[int, int, int], float] | None = None,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    progress: bool = True,
    on_batch: Callable[[int, int, float], None] | None = None,
) -> EpochResult:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: A multi-exit network (possibly wrapped in DistributedDataParallel) whose
            forward returns a list of per-exit logits.
        loader: Yields ``(images, targets)``; must have a length when ``lr_schedule`` is given.
        optimizer: The optimizer.
        loss_fn: Maps ``(list of logits, targets)`` to a scalar loss.
        epoch: 0-based epoch, passed to ``lr_schedule`` and used in messages.
        lr_schedule: ``(epoch, batch_index, batches_per_epoch) -> lr`` applied before every
            iteration (e.g. :class:`LRSchedule`); ``None`` leaves the optimizer's rate alone.
        device: Where to move the batches; defaults to the model's parameters' device.
        amp_dtype: Autocast dtype (``torch.bfloat16`` or ``torch.float16``), or ``None``.
        scaler: A GradScaler for float16 autocast.
        channels_last: Feed the images in channels-last memory format.
        progress: Show a tqdm bar (only on rank 0, only when stderr is a terminal, only if
            tqdm is installed).
        on_batch: Called after every iteration with ``(batch_index, batches, loss)``.

    Returns:
        Mean loss, per-exit training accuracy and the epoch's first learning rate.

    Raises:
        NonFiniteLossError: The loss of some iteration (on any process) is NaN or infinite;
            raised before that iteration's optimizer step.
        ValueError: The loader yielded nothing.
    """
    target_device = torch.device(device) if device is not None else module_device(model)
    num_batches = len(loader) if isinstance(loader, Sized) else 0
    if lr_schedule is not None and num_batches == 0:
        raise ValueError("lr_schedule needs a loader with a length")
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=target_device)
    correct: Tensor | None = None
    count = 0
    first_lr: float | None = None
    batches, bar = _with_progress(
        loader, _progress_enabled(progress), f"epoch {epoch}", num_batches
    )
    try:
        for batch_index, (raw_images, raw_targets) in enumerate(batches):
            if lr_schedule is not None:
                set_learning_rate(optimizer, lr_schedule(epoch, batch_index, num_batches))
            if first_lr is None:
                first_lr = float(optimizer.param_groups[0]["lr"])
            images, targets = _prepare(raw_images, raw_targets, target_device, channels_last)
            with _autocast(target_device, amp_dtype):
                outputs = list(model(images))
                loss = loss_fn(outputs, targets)
            # Every process must agree before anyone steps, or a process that skipped the
            # step would leave the others waiting in DDP's gradient all-reduce.
            non_finite = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
            if float(all_reduce_sum(non_finite)) > 0:
                raise NonFiniteLossError(
                    epoch, batch_index, num_batches, float(loss.detach().float())
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                torch.autograd.backward(scaler.scale(loss))
                scaler.step(optimizer)
                scaler.update()
            else:
                torch.autograd.backward(loss)
                optimizer.step()
            with torch.no_grad():
                size = int(targets.shape[0])
                loss_sum += loss.detach().double() * size
                hits = torch.stack([topk_correct(o, targets, 1) for o in outputs])
                correct = hits if correct is None else correct + hits
                count += size
            if on_batch is not None or bar is not None:
                value = float(loss.detach())
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}")
                if on_batch is not None:
                    on_batch(batch_index, num_batches, value)
    finally:
        if bar is not None:
            bar.close()
    if correct is None or first_lr is None:
        raise ValueError("the training loader yielded no batches")
    totals = torch.cat(
        [
            torch.tensor([float(count)], dtype=torch.float64, device=target_device),
            loss_sum.reshape(1),
            correct.to(torch.float64),
        ]
    )
    totals = all_reduce_sum(totals).cpu()
    samples = int(totals[0])
    return EpochResult(
        loss=float(totals[1]) / samples,
        exit_top1=tuple(float(c) / samples for c in totals[2:]),
        lr=first_lr,
        num_samples=samples,
    )


def validate(
    model: nn.Module,
    loader: Iterable[Batch],
    loss_fn: LossFunction | None = None,
    *,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> ValidationResult:
    """Loss and per-exit accuracy of ``model`` (in eval mode, restored afterwards).

    A DDP wrapper is looked through: the inner module runs, so no collective is issued and
    ranks may validate independently. Results are summed over processes only when the
    loader's sampler is a :class:`~torch.utils.data.DistributedSampler` (a sharded set);
    with an unsharded loader every process evaluates the full set and gets the same numbers.

    Args:
        model: The network.
        loader: Yields ``(images, targets)``.
        loss_fn: The training loss; ``None`` reports a loss of 0.
        device: Where to move the batches; defaults to the model's device.
        amp_dtype: Autocast dtype or ``None``.
        channels_last: Feed the images in channels-last memory format.

    Returns:
        The mean loss and every exit's top-1/top-5 accuracy.
    """
    net = unwrap_model(model)
    target_device = torch.device(device) if device is not None else module_device(net)
    was_training = net.training
    net.eval()
    totals: Tensor | None = None
    try:
        with torch.no_grad():
            for raw_images, raw_targets in loader:
                images, targets = _prepare(raw_images, raw_targets, target_device, channels_last)
                with _autocast(target_device, amp_dtype):
                    outputs = list(net(images))
                    loss = loss_fn(outputs, targets) if loss_fn is not None else None
                size = int(targets.shape[0])
                top1 = [topk_correct(o, targets, 1) for o in outputs]
                top5 = [topk_correct(o, targets, 5) for o in outputs]
                row = torch.stack(
                    [
                        torch.tensor(float(size), device=target_device, dtype=torch.float64),
                        (loss.detach().double() * size)
                        if loss is not None
                        else torch.zeros((), dtype=torch.float64, device=target_device),
                        *(t.double() for t in top1),
                        *(t.double() for t in top5),
                    ]
                )
                totals = row if totals is None else totals + row
    finally:
        net.train(was_training)
    if totals is None:
        raise ValueError("the evaluation loader yielded no batches")
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        totals = all_reduce_sum(totals)
    values = totals.cpu().tolist()
    samples = values[0]
    exits = (len(values) - 2) // 2
    return ValidationResult(
        loss=values[1] / samples,
        exit_top1=tuple(v / samples for v in values[2 : 2 + exits]),
        exit_top5=tuple(v / samples for v in values[2 + exits :]),
        num_samples=int(samples),
    )


# --------------------------------------------------------------------------------------------
# State and checkpoints
# --------------------------------------------------------------------------------------------


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
    scaler: torch.amp.GradScaler | None = None,
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
    save_atomic(dict(checkpoint), path)


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
    scaler: torch.amp.GradScaler | None = None,
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


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch] | None,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFunction,
    *,
    epochs: int,
    lr_schedule: Callable[[int, int, int], float] | None = None,
    device: torch.device | str | None = None,
    state: TrainState | None = None,
    save_dir: str | os.PathLike[str] | None = None,
    arch: str = "",
    config: Mapping[str, Any] | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    progress: bool = True,
    on_batch: Callable[[int, int, int, float], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainState:
    """Train from ``state.next_epoch`` up to ``epochs``, validating after every epoch.

    After each epoch, rank 0 (only) writes ``checkpoint_last.pt`` into ``save_dir``, and
    ``model_best.pt`` when the final exit's validation top-1 improved (training top-1 when
    there is no validation loader). Both are written atomically; an exception (e.g.
    :class:`NonFiniteLossError`) ends the run before anything of that epoch is saved.

    Args:
        model: The network, possibly wrapped in DistributedDataParallel.
        train_loader: Training batches; a ``DistributedSampler`` in it gets ``set_epoch``.
        val_loader: Validation batches, or ``None``.
        optimizer: The optimizer.
        loss_fn: ``(list of logits, targets) -> loss``.
        epochs: Total epochs of the run (the last epoch run is ``epochs - 1``).
        lr_schedule: ``(epoch, batch_index, batches_per_epoch) -> lr``, e.g. :class:`LRSchedule`.
        device: Where batches go; defaults to the model's device.
        state: Where to continue (from :func:`resume`); a fresh run when ``None``.
        save_dir: Folder for checkpoints; nothing is saved when ``None``.
        arch: Architecture name stored in the checkpoints.
        config: Model config dict stored in the checkpoints.
        amp_dtype: Autocast dtype or ``None``.
        scaler: GradScaler for float16 autocast.
        channels_last: Feed images in channels-last format.
        progress: Show tqdm bars (rank 0, terminals only).
        on_batch: Called with ``(epoch, batch_index, batches, loss)`` after every iteration.
        on_epoch: Called with each epoch's record (keys ``epoch``, ``lr``, ``train_loss``,
            ``train_top1`` (per exit), ``val_loss``, ``val_top1``, ``val_top5`` (``None``
            without validation), ``is_best``).

    Returns:
        The final state.
    """
    run_state = state if state is not None else TrainState()
    sampler = getattr(train_loader, "sampler", None)
    folder = Path(save_dir) if save_dir is not None else None
    for epoch in range(run_state.next_epoch, epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)

        def batch_hook(index: int, total: int, loss: float, _epoch: int = epoch) -> None:
            if on_batch is not None:
                on_batch(_epoch, index, total, loss)

        trained = train_one_epoch(
            model,
            train_loader,
            optimizer,
            loss_fn,
            epoch=epoch,
            lr_schedule=lr_schedule,
            device=device,
            amp_dtype=amp_dtype,
            scaler=scaler,
            channels_last=channels_last,
            progress=progress,
            on_batch=batch_hook if on_batch is not None else None,
        )
        checked = (
            validate(
                model,
                val_loader,
                loss_fn,
                device=device,
                amp_dtype=amp_dtype,
                channels_last=channels_last,
            )
            if val_loader is not None
            else None
        )
        score = checked.exit_top1[-1] if checked is not None else trained.exit_top1[-1]
        is_best = score > run_state.best
        if is_best:
            run_state.best, run_state.best_epoch = score, epoch
        record: dict[str, Any] = {
            "epoch": epoch,
            "lr": trained.lr,
            "train_loss": trained.loss,
            "train_top1": list(trained.exit_top1),
            "val_loss": checked.loss if checked is not None else None,
            "val_top1": list(checked.exit_top1) if checked is not None else None,
            "val_top5": list(checked.exit_top5) if checked is not None else None,
            "is_best": is_best,
        }
        run_state.history.append(record)
        run_state.next_epoch = epoch + 1
        if folder is not None and get_rank() == 0:
            checkpoint = make_checkpoint(
                model,
                optimizer,
                run_state,
                scaler=scaler,
                arch=arch,
                config=config,
                loader=train_loader,
            )
            if is_best:
                best = {
                    key: checkpoint[key] for key in ("model", "epoch", "best", "arch", "config")
                }
                best["format"] = MODEL_FORMAT
                save_checkpoint(best, folder / BEST_MODEL)
            save_checkpoint(checkpoint, folder / LAST_CHECKPOINT)
        if on_epoch is not None:
            on_epoch(record)
    return run_state
