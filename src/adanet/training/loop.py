"""One training epoch and one validation pass over a multi-exit network."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from adanet._device import module_device
from adanet.measure.evaluation import topk_correct
from adanet.training.distributed import all_reduce_sum, get_rank
from adanet.training.precision import Precision
from adanet.training.schedule import set_learning_rate

__all__ = [
    "BatchCallback",
    "EpochResult",
    "LossFunction",
    "NonFiniteLossError",
    "ValidationResult",
    "train_one_epoch",
    "unwrap_model",
    "validate",
]

Batch = Sequence[Tensor]


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
"""A loss over a multi-exit model's list of logits, e.g. :class:`adanet.training.MultiExitLoss`."""

BatchCallback = Callable[[int, int, int, float], None]
"""Called after every training iteration with ``(epoch, batch_index, num_batches, loss)``."""


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


class _EpochTotals:
    """Running sums of one epoch: samples, loss and per-exit hits, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct: Tensor | None = None
        self.count = 0

    def add(self, outputs: Sequence[Tensor], targets: Tensor, loss: Tensor) -> None:
        with torch.no_grad():
            size = int(targets.shape[0])
            self.loss += loss.detach().double() * size
            hits = torch.stack([topk_correct(o, targets, 1) for o in outputs])
            self.correct = hits if self.correct is None else self.correct + hits
            self.count += size

    def result(self, first_lr: float) -> EpochResult:
        if self.correct is None:
            raise ValueError("the training loader yielded no batches")
        totals = torch.cat(
            [
                torch.tensor([float(self.count)], dtype=torch.float64, device=self.device),
                self.loss.reshape(1),
                self.correct.to(torch.float64),
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


def _step(
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    position: tuple[int, int, int],
) -> None:
    """Check the loss on every process, then back-propagate and step (scaled if asked)."""
    # Every process must agree before anyone steps, or a process that skipped the step
    # would leave the others waiting in DDP's gradient all-reduce.
    non_finite = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
    if float(all_reduce_sum(non_finite)) > 0:
        raise NonFiniteLossError(*position, float(loss.detach().float()))
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        torch.autograd.backward(scaler.scale(loss))
        scaler.step(optimizer)
        scaler.update()
    else:
        torch.autograd.backward(loss)
        optimizer.step()


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFunction,
    *,
    epoch: int,
    lr_schedule: Callable[[int, int, int], float] | None = None,
    device: torch.device | str | None = None,
    precision: Precision | None = None,
    progress: bool = True,
    on_batch: BatchCallback | None = None,
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
        precision: Autocast dtype, gradient scaler and memory format; full precision when
            ``None``.
        progress: Show a tqdm bar (only on rank 0, only when stderr is a terminal, only if
            tqdm is installed).
        on_batch: Called after every iteration with ``(epoch, batch_index, batches, loss)``.

    Returns:
        Mean loss, per-exit training accuracy and the epoch's first learning rate.

    Raises:
        NonFiniteLossError: The loss of some iteration (on any process) is NaN or infinite;
            raised before that iteration's optimizer step.
        ValueError: The loader yielded nothing, or ``lr_schedule`` needs its length.
    """
    setting = precision if precision is not None else Precision()
    target_device = torch.device(device) if device is not None else module_device(model)
    num_batches = len(loader) if isinstance(loader, Sized) else 0
    if lr_schedule is not None and num_batches == 0:
        raise ValueError("lr_schedule needs a loader with a length")
    model.train()
    totals = _EpochTotals(target_device)
    first_lr: float | None = None
    batches, bar = _with_progress(
        loader, _progress_enabled(progress), f"epoch {epoch}", num_batches
    )
    try:
        for index, (raw_images, raw_targets) in enumerate(batches):
            if lr_schedule is not None:
                set_learning_rate(optimizer, lr_schedule(epoch, index, num_batches))
            if first_lr is None:
                first_lr = float(optimizer.param_groups[0]["lr"])
            images, targets = setting.prepare(raw_images, raw_targets, target_device)
            with setting.autocast(target_device):
                outputs = list(model(images))
                loss = loss_fn(outputs, targets)
            _step(loss, optimizer, setting.scaler, (epoch, index, num_batches))
            totals.add(outputs, targets, loss)
            if on_batch is not None or bar is not None:
                value = float(loss.detach())
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}")
                if on_batch is not None:
                    on_batch(epoch, index, num_batches, value)
    finally:
        if bar is not None:
            bar.close()
    return totals.result(first_lr if first_lr is not None else 0.0)


def validate(
    model: nn.Module,
    loader: Iterable[Batch],
    loss_fn: LossFunction | None = None,
    *,
    device: torch.device | str | None = None,
    precision: Precision | None = None,
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
        precision: Autocast dtype and memory format (the scaler is not used); full precision
            when ``None``.

    Returns:
        The mean loss and every exit's top-1/top-5 accuracy.

    Raises:
        ValueError: The loader yielded nothing.
    """
    setting = precision if precision is not None else Precision()
    net = unwrap_model(model)
    target_device = torch.device(device) if device is not None else module_device(net)
    was_training = net.training
    net.eval()
    totals: Tensor | None = None
    try:
        with torch.no_grad():
            for raw_images, raw_targets in loader:
                images, targets = setting.prepare(raw_images, raw_targets, target_device)
                with setting.autocast(target_device):
                    outputs = list(net(images))
                    loss = loss_fn(outputs, targets) if loss_fn is not None else None
                row = _validation_row(outputs, targets, loss, target_device)
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


def _validation_row(
    outputs: Sequence[Tensor], targets: Tensor, loss: Tensor | None, device: torch.device
) -> Tensor:
    """``[samples, loss sum, top-1 hits per exit..., top-5 hits per exit...]`` of one batch."""
    size = int(targets.shape[0])
    loss_sum = (
        loss.detach().double() * size
        if loss is not None
        else torch.zeros((), dtype=torch.float64, device=device)
    )
    return torch.stack(
        [
            torch.tensor(float(size), device=device, dtype=torch.float64),
            loss_sum,
            *(topk_correct(o, targets, 1).double() for o in outputs),
            *(topk_correct(o, targets, 5).double() for o in outputs),
        ]
    )
