""":func:`fit`: epochs of training and validation with checkpoints and a per-epoch log."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from adanet.training.checkpoints import (
    BEST_MODEL,
    LAST_CHECKPOINT,
    MODEL_FORMAT,
    TrainState,
    make_checkpoint,
    save_checkpoint,
)
from adanet.training.distributed import get_rank
from adanet.training.epoch_log import METRICS_CSV, EpochCallback, write_epoch_csv
from adanet.training.loop import (
    Batch,
    BatchCallback,
    EpochResult,
    LossFunction,
    train_one_epoch,
    validate,
)
from adanet.training.precision import Precision

__all__ = ["FitOptions", "fit"]


@dataclass(frozen=True)
class FitOptions:
    """Everything about a :func:`fit` run besides the model, data, optimizer and loss.

    Attributes:
        lr_schedule: ``(epoch, batch_index, batches_per_epoch) -> lr``, e.g.
            :class:`LRSchedule`; ``None`` leaves the optimizer's rate alone.
        device: Where batches go; defaults to the model's device.
        precision: Autocast dtype, gradient scaler and memory format.
        progress: Show tqdm bars (rank 0, terminals only).
        save_dir: Run folder for checkpoints and ``metrics.csv``; nothing is saved when
            ``None``.
        arch: Architecture name stored in the checkpoints.
        config: Model config dict stored in the checkpoints.
        on_batch: Called with ``(epoch, batch_index, batches, loss)`` after every iteration.
        on_epoch: Called with each epoch's record (see :func:`fit`).
    """

    lr_schedule: Callable[[int, int, int], float] | None = None
    device: torch.device | str | None = None
    precision: Precision = field(default_factory=Precision)
    progress: bool = True
    save_dir: str | os.PathLike[str] | None = None
    arch: str = ""
    config: Mapping[str, Any] | None = None
    on_batch: BatchCallback | None = None
    on_epoch: EpochCallback | None = None


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch] | None,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFunction,
    *,
    epochs: int,
    state: TrainState | None = None,
    options: FitOptions | None = None,
) -> TrainState:
    """Train from ``state.next_epoch`` up to ``epochs``, validating after every epoch.

    After each epoch, rank 0 (only) writes into ``options.save_dir``: ``checkpoint_last.pt``,
    ``model_best.pt`` when the final exit's validation top-1 improved (training top-1 when
    there is no validation loader), and ``metrics.csv`` (one line per epoch of the whole run,
    resumed epochs included). All are written atomically; an exception (e.g.
    :class:`NonFiniteLossError`) ends the run before anything of that epoch is saved.

    Each epoch's record (in ``state.history``, the CSV and ``on_epoch``) has the keys
    ``epoch``, ``lr``, ``seconds``, ``train_loss``, ``train_top1`` (per exit), ``val_loss``,
    ``val_top1``, ``val_top5`` (``None`` without validation) and ``is_best``.

    Args:
        model: The network, possibly wrapped in DistributedDataParallel.
        train_loader: Training batches; a ``DistributedSampler`` in it gets ``set_epoch``.
        val_loader: Validation batches, or ``None``.
        optimizer: The optimizer.
        loss_fn: ``(list of logits, targets) -> loss``.
        epochs: Total epochs of the run (the last epoch run is ``epochs - 1``).
        state: Where to continue (from :func:`resume`); a fresh run when ``None``.
        options: Schedule, device, precision, saving and callbacks (:class:`FitOptions`).

    Returns:
        The final state.

    Raises:
        ValueError: ``epochs`` is below ``state.next_epoch`` (nothing would be trained).
    """
    opts = options if options is not None else FitOptions()
    run_state = state if state is not None else TrainState()
    if epochs < run_state.next_epoch:
        raise ValueError(
            f"epochs={epochs} is below the next epoch to run ({run_state.next_epoch}): "
            "nothing would be trained"
        )
    sampler = getattr(train_loader, "sampler", None)
    for epoch in range(run_state.next_epoch, epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        started = time.perf_counter()
        trained = train_one_epoch(
            model,
            train_loader,
            optimizer,
            loss_fn,
            epoch=epoch,
            lr_schedule=opts.lr_schedule,
            device=opts.device,
            precision=opts.precision,
            progress=opts.progress,
            on_batch=opts.on_batch,
        )
        record = _epoch_record(model, val_loader, loss_fn, opts, trained, epoch, run_state)
        record["seconds"] = time.perf_counter() - started
        run_state.history.append(record)
        run_state.next_epoch = epoch + 1
        if opts.save_dir is not None and get_rank() == 0:
            _save_epoch(model, optimizer, run_state, opts, train_loader, record["is_best"])
        if opts.on_epoch is not None:
            opts.on_epoch(record)
    return run_state


def _epoch_record(
    model: nn.Module,
    val_loader: Iterable[Batch] | None,
    loss_fn: LossFunction,
    opts: FitOptions,
    trained: EpochResult,
    epoch: int,
    run_state: TrainState,
) -> dict[str, Any]:
    """Validate, update the best score, and make the epoch's record."""
    checked = (
        validate(model, val_loader, loss_fn, device=opts.device, precision=opts.precision)
        if val_loader is not None
        else None
    )
    score = checked.exit_top1[-1] if checked is not None else trained.exit_top1[-1]
    is_best = score > run_state.best
    if is_best:
        run_state.best, run_state.best_epoch = score, epoch
    return {
        "epoch": epoch,
        "lr": trained.lr,
        "train_loss": trained.loss,
        "train_top1": list(trained.exit_top1),
        "val_loss": checked.loss if checked is not None else None,
        "val_top1": list(checked.exit_top1) if checked is not None else None,
        "val_top5": list(checked.exit_top5) if checked is not None else None,
        "is_best": is_best,
    }


def _save_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    run_state: TrainState,
    opts: FitOptions,
    train_loader: object,
    is_best: bool,
) -> None:
    """Write the epoch's checkpoint, the best model when it improved, and the CSV log."""
    assert opts.save_dir is not None  # checked by the caller
    folder = Path(opts.save_dir)
    checkpoint = make_checkpoint(
        model,
        optimizer,
        run_state,
        scaler=opts.precision.scaler,
        arch=opts.arch,
        config=opts.config,
        loader=train_loader,
    )
    if is_best:
        best = {key: checkpoint[key] for key in ("model", "epoch", "best", "arch", "config")}
        best["format"] = MODEL_FORMAT
        save_checkpoint(best, folder / BEST_MODEL)
    save_checkpoint(checkpoint, folder / LAST_CHECKPOINT)
    write_epoch_csv(folder / METRICS_CSV, run_state.history)
