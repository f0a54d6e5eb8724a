"""``adanet train``: train a network with the original ``main.py`` flags, then evaluate it.

The run folder is append-only: a folder that holds a run is refused unless ``--resume``
continues it (same architecture, data, data folder, validation split and seed, checked
before anything is written) or ``--overwrite`` replaces it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from adanet._atomic import write_json_atomic, write_text_atomic
from adanet.cli import evaluate
from adanet.cli.console import Printer
from adanet.cli.errors import CLIError
from adanet.cli.options import run_options
from adanet.cli.policy_runs import PolicyOptions, add_policy_options
from adanet.cli.run_evaluation import evaluate_run
from adanet.cli.run_folder import TENSORBOARD_DIR, RunFolderError, claim_run_folder
from adanet.cli.runtime import load_data, make_optimizer, read_run_config, seed_everything
from adanet.cli.spec import IDENTITY_FIELDS, RunSpec, build_model, reference_args_line
from adanet.data import DataLoaders, DataSplits, build_loaders
from adanet.training import (
    LAST_CHECKPOINT,
    FitOptions,
    LRSchedule,
    Precision,
    TensorBoardLogger,
    TrainState,
    fit,
    load_checkpoint,
    resume,
)
from adanet.training.distributed import DistributedContext, barrier
from adanet.training.losses import MultiExitLoss

__all__ = ["NAME", "register", "run"]

NAME = "train"


def register(commands: Any) -> None:
    """Add the ``train`` sub-command to ``commands`` (argparse sub-parsers)."""
    parser = commands.add_parser(
        NAME,
        parents=[run_options()],
        help="train (original main.py flags), then evaluate",
        description="Train a network, then evaluate it anytime and budgeted with real early "
        "exit. With --evalmode, evaluate --evaluate-from instead (as the original).",
    )
    add_policy_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: DistributedContext, say: Printer) -> int:
    """Run ``adanet train``; returns the exit status.

    Raises:
        CLIError: A bad option, a refused run folder or resume, unreadable data.
    """
    if args.evalmode is not None:
        # The original main.py evaluates --evaluate-from when --evalmode is given.
        if not args.evaluate_from:
            raise CLIError("--evalmode needs --evaluate-from PATH (as in the original)")
        return evaluate.run(args, ctx, say)
    spec = RunSpec.from_args(args)
    policies = PolicyOptions.from_args(args)
    # Before training, not after: the guarantee needs data the model was not tuned on.
    policies.check_calibration_split(spec.use_valid)
    precision, saved = _preflight(spec, ctx)
    seed_everything(spec.seed)
    splits = load_data(spec)
    if splits.num_classes != spec.config.num_classes:
        raise CLIError(
            f"--data {spec.data} has {splits.num_classes} classes but the config "
            f"{spec.config.num_classes}"
        )
    loaders = build_loaders(
        splits, spec.batch_size, spec.workers, distributed=ctx.distributed, seed=spec.seed
    )
    model = build_model(spec.arch, spec.config)
    net = _place(model, spec, ctx, say)
    optimizer = make_optimizer(spec, model)
    session = _Session(spec, ctx, say, precision, splits, loaders, model, net, optimizer, policies)
    return _train_and_evaluate(session, _start_run(session, saved))


def _preflight(spec: RunSpec, ctx: DistributedContext) -> tuple[Precision, dict[str, Any]]:
    """Every check that needs neither data nor model, before anything is loaded or written:
    the run folder, the start epoch, precision, TensorBoard, and that a resume continues the
    same run.

    Returns:
        The precision settings and the resumed run's ``config.json`` (``{}`` when fresh).
    """
    try:
        claim_run_folder(spec.folder, resume=spec.resume, overwrite=spec.overwrite, dry_run=True)
    except RunFolderError as error:
        raise CLIError(str(error)) from None
    if spec.start_epoch >= spec.epochs:
        raise CLIError(
            f"--start-epoch {spec.start_epoch} leaves nothing to train with --epochs "
            f"{spec.epochs}; the last epoch run is --epochs - 1"
        )
    if spec.sync_bn and ctx.distributed and ctx.device.type != "cuda":
        raise CLIError("--sync-bn needs CUDA devices (SyncBatchNorm does not run on the CPU)")
    try:
        amp: Any = spec.amp
        precision = Precision.create(amp, ctx.device, channels_last=spec.channels_last)
    except ValueError as error:
        raise CLIError(f"--amp {spec.amp}: {error}") from None
    if spec.tensorboard:
        try:
            TensorBoardLogger.check_available()
        except ImportError as error:
            raise CLIError(f"--tensorboard: {error}") from None
    if not spec.resume:
        return precision, {}
    saved = read_run_config(spec.folder / "config.json")
    if (spec.folder / LAST_CHECKPOINT).is_file() and not saved:
        raise CLIError(
            f"{spec.folder} has a checkpoint but no config.json, so the resume cannot be "
            "checked against the run's data and seed; pass --overwrite to start afresh"
        )
    if saved:
        _check_same_run(spec, saved)
    return precision, saved


@dataclass(frozen=True)
class _Session:
    """The pieces of one training run, built once by :func:`run`."""

    spec: RunSpec
    ctx: DistributedContext
    say: Printer
    precision: Precision
    splits: DataSplits
    loaders: DataLoaders
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    policies: PolicyOptions


def _place(model: nn.Module, spec: RunSpec, ctx: DistributedContext, say: Printer) -> nn.Module:
    """Move ``model`` to the device (SyncBatchNorm, channels-last, DDP as asked); returns
    the module to train (the DDP wrapper when distributed)."""
    if spec.sync_bn and ctx.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    elif spec.sync_bn:
        say("note: --sync-bn has no effect in a single process")
    model.to(ctx.device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _start_run(session: _Session, saved: Mapping[str, Any]) -> TrainState:
    """Load the checkpoint of a resumed run, and only then write the run's settings (rank 0).
    A refused run or resume changes no file."""
    spec = session.spec
    state = TrainState(next_epoch=spec.start_epoch)
    if spec.resume:
        state = _resume(session)
    if state.next_epoch >= spec.epochs:
        raise CLIError(
            f"{spec.folder} already holds {state.next_epoch} trained epochs; pass a larger "
            f"--epochs than {spec.epochs} to train more"
        )
    barrier()  # every process has checked before the folder changes
    if session.ctx.is_main:
        claim_run_folder(spec.folder, resume=spec.resume, overwrite=spec.overwrite)
        settings = spec.to_dict()
        if saved:
            earlier = [s for s in saved.get("previous", []) if isinstance(s, Mapping)]
            settings["previous"] = [
                *earlier,
                {k: v for k, v in saved.items() if k != "previous"},
            ]
        write_json_atomic(spec.folder / "config.json", settings)
        write_text_atomic(
            spec.folder / "args.txt", reference_args_line(spec, spec.arch, spec.config) + "\n"
        )
    return state


def _resume(session: _Session) -> TrainState:
    """Load the run's checkpoint (refusing one of another configuration), if there is one."""
    spec, say = session.spec, session.say
    last = spec.folder / LAST_CHECKPOINT
    if not last.is_file():
        say(f"=> --resume: no checkpoint in {spec.folder}; starting from scratch")
        return TrainState(next_epoch=spec.start_epoch)
    stored = load_checkpoint(last)
    if stored.get("config") is not None and stored.get("config") != spec.config.to_dict():
        raise CLIError(
            f"{last} was trained with another configuration ({stored.get('arch')}: "
            f"{stored.get('config')}); resume with the same architecture flags"
        )
    state = resume(
        last,
        session.model,
        session.optimizer,
        scaler=session.precision.scaler,
        loader=session.loaders.train,
    )
    say(
        f"=> resumed from {last}: continuing at epoch {state.next_epoch} of "
        f"{spec.epochs} (epochs 0-{state.next_epoch - 1} done)"
    )
    return state


def _check_same_run(spec: RunSpec, saved: Mapping[str, Any]) -> None:
    """Raise unless ``spec`` continues the run ``saved`` describes."""
    try:
        before = RunSpec.identity_of(saved)
    except (KeyError, TypeError, ValueError, CLIError) as error:
        raise CLIError(
            f"{spec.folder / 'config.json'} does not describe a run ({error}); pass "
            "--overwrite to start afresh"
        ) from None
    now = spec.identity()
    different = [key for key in IDENTITY_FIELDS if before[key] != now[key]]
    if different:
        details = "; ".join(f"{k}: run {before[k]!r}, now {now[k]!r}" for k in different)
        raise CLIError(
            f"--resume must continue the same run, but {', '.join(different)} differ "
            f"({details[:400]}). Resume with the run's settings, or use another --save"
        )


def _train_and_evaluate(session: _Session, state: TrainState) -> int:
    """Train with :func:`fit`, then evaluate the final model on rank 0."""
    spec, ctx, say, model, loaders = (
        session.spec,
        session.ctx,
        session.say,
        session.model,
        session.loaders,
    )
    num_params = sum(p.numel() for p in model.parameters())
    say(
        f"training {spec.arch} ({num_params / 1e6:.3f}M parameters, {model.num_exits} exits) "
        f"on {spec.data} for {spec.epochs} epochs on {ctx.device}"
        + (f" x {ctx.world_size} processes ({ctx.backend})" if ctx.distributed else "")
    )
    options = _fit_options(spec, session.precision, ctx, say)
    val_loader = loaders.val if loaders.val is not None else loaders.test
    started = time.perf_counter()
    try:
        # Without --use-valid the original validates on the test set, too.
        state = fit(
            session.net,
            loaders.train,
            val_loader,
            session.optimizer,
            MultiExitLoss(spec.loss),  # type: ignore[arg-type]
            epochs=spec.epochs,
            state=state,
            options=options,
        )
    finally:
        if isinstance(options.on_epoch, _EpochPrinter):
            options.on_epoch.close()
    elapsed = time.perf_counter() - started
    if state.best_epoch >= 0:
        say(f"best val top-1 (last exit) {100 * state.best:.2f}% at epoch {state.best_epoch}")
    barrier()
    if ctx.is_main:
        _final_evaluation(session, state, elapsed)
    return 0


def _final_evaluation(session: _Session, state: TrainState, elapsed: float) -> None:
    """Evaluate the final model into the run's ``metrics.json`` and friends (rank 0)."""
    spec, ctx, say = session.spec, session.ctx, session.say
    say("evaluating the final model")
    evaluate_run(
        session.model,  # type: ignore[arg-type]
        session.loaders,
        (session.splits.in_channels, session.splits.image_size, session.splits.image_size),
        spec.folder,
        evalmode="both",
        convention=spec.cost_convention,  # type: ignore[arg-type]
        info={
            "arch": spec.arch,
            "data": spec.data,
            "checkpoint": str(spec.folder / LAST_CHECKPOINT),
            "train": {
                "epochs": spec.epochs,
                "seconds_this_run": elapsed,
                "world_size": ctx.world_size,
                "best_val_top1": state.best if math.isfinite(state.best) else None,
                "best_epoch": state.best_epoch,
                "history": state.history,
            },
        },
        say=say,
        options=session.policies,
    )


class _EpochPrinter:
    """Prints one line per epoch, and writes TensorBoard scalars when asked."""

    def __init__(self, say: Printer, tensorboard: TensorBoardLogger | None) -> None:
        self.say = say
        self.tensorboard = tensorboard

    def __call__(self, record: dict[str, Any]) -> None:
        line = (
            f"epoch {record['epoch']:>3}  lr {record['lr']:.4f}  "
            f"train loss {record['train_loss']:.4f}  "
            f"train top-1 (last exit) {100 * record['train_top1'][-1]:.2f}%"
        )
        if record["val_top1"] is not None:
            line += f"  val top-1 (last exit) {100 * record['val_top1'][-1]:.2f}%"
        self.say(line + ("  *best*" if record["is_best"] else ""))
        if self.tensorboard is not None:
            self.tensorboard(record)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _fit_options(
    spec: RunSpec, precision: Precision, ctx: DistributedContext, say: Printer
) -> FitOptions:
    show_bar = spec.progress and sys.stderr.isatty()

    def on_batch(epoch: int, index: int, total: int, loss: float) -> None:
        if not show_bar and spec.print_freq > 0 and index % spec.print_freq == 0:
            say(f"Epoch: [{epoch}][{index + 1}/{total}]\tLoss {loss:.4f}")

    board = None
    if spec.tensorboard and ctx.is_main:
        board = TensorBoardLogger(spec.folder / TENSORBOARD_DIR)
    return FitOptions(
        lr_schedule=LRSchedule(
            base_lr=spec.lr,
            epochs=spec.epochs,
            lr_type=spec.lr_type,  # type: ignore[arg-type]
            decay_rate=spec.decay_rate,
            step_every=30 if spec.data == "ImageNet" else None,
        ),
        device=ctx.device,
        precision=precision,
        progress=spec.progress,
        save_dir=spec.folder,
        arch=spec.arch,
        config=spec.config.to_dict(),
        on_batch=on_batch,
        on_epoch=_EpochPrinter(say, board),
    )
