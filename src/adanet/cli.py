"""The ``adanet`` command: ``adanet train`` and ``adanet eval`` (also ``python -m adanet``).

``adanet train`` accepts the command line of the original RANet ``main.py`` unchanged (the
same option names, defaults and meanings; ``--data digits`` is added), so::

    adanet train --arch RANet --data-root /data --data cifar10 --step 4 --stepmode even \\
        --scale-list 1-2-3-3 --grFactor 4-2-1-1 --bnFactor 4-2-1-1 --save runs/ranet

trains the published CIFAR RANet. Added options: ``--preset NAME`` (a named config that
explicit architecture flags override), ``--amp bf16|fp16``, ``--channels-last``,
``--loss ce|distill``, ``--sync-bn``, ``--cost-convention`` and ``--download``.

Run it under ``torchrun --nproc_per_node N -m adanet train ...`` for DistributedDataParallel
(NCCL on CUDA, gloo on CPU; torchrun's environment variables are read, so multi-node launches
work unchanged). Training data is sharded with a ``DistributedSampler``; every process
validates the full (unsharded) validation set after each epoch, so all agree on the best
epoch without communicating; the final anytime and budgeted evaluation runs on rank 0 only,
over the full sets, and only rank 0 writes files.

Files written into ``--save``: ``config.json``, ``args.txt`` (the original's ``Namespace(...)``
line), ``checkpoint_last.pt`` and ``model_best.pt`` (atomic), ``metrics.json``,
``policies.json``, ``anytime.png`` and ``budgeted.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .budgeted import DEFAULT_PS, budgeted_sweep
from .checkpoint import CheckpointError, load_reference_checkpoint, read_state_dict
from .costs import Convention, measure_exit_costs
from .data import DATASET_NAMES, DataLoaders, DataSplits, build_datasets, build_loaders
from .distributed import DistributedContext, barrier, cleanup_distributed, init_distributed
from .evaluation import AnytimeEvaluation, evaluate_anytime, evaluate_policy
from .losses import MultiExitLoss
from .models import RANet, RANetConfig
from .models import ranet_config as _ranet_config
from .protocol import EarlyExitNetwork
from .reference_args import REFERENCE_DATASETS, parse_dash_list
from .report import write_run_report
from .training import (
    BEST_MODEL,
    LAST_CHECKPOINT,
    LRSchedule,
    NonFiniteLossError,
    TrainState,
    fit,
    load_checkpoint,
    resume,
)

__all__ = [
    "CLIError",
    "build_config",
    "build_parser",
    "evaluate_run",
    "main",
    "reference_args_line",
]

# The original RANet args.py defaults of the architecture options, by their original names.
_RANET_DEFAULTS: dict[str, Any] = {
    "nBlocks": 2,
    "nChannels": 16,
    "growthRate": 6,
    "grFactor": "4-2-1",
    "bnFactor": "4-2-1",
    "block_step": 2,
    "scale_list": "1-2-3",
    "compress_factor": 0.25,
    "step": 4,
    "stepmode": "even",
    "reduction": 0.5,
}

_LIST_OPTIONS = ("grFactor", "bnFactor", "scale_list")

# num_classes and stem/head variant of each dataset, as the originals derive them from --data.
_TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")


class CLIError(Exception):
    """A problem with the command line or its inputs; printed without a traceback."""


@dataclass(frozen=True)
class _Architecture:
    name: str
    config_cls: Any
    model_cls: Any
    reference_names: Mapping[str, str]
    defaults: Mapping[str, Any]


def _architectures() -> dict[str, _Architecture]:
    """Architecture name (lower case) → config and model classes. MSDNet joins when its module
    is importable."""
    table = {
        "ranet": _Architecture(
            "RANet", RANetConfig, RANet, _ranet_config.REFERENCE_OPTION_NAMES, _RANET_DEFAULTS
        )
    }
    try:
        from .models import msdnet as msdnet_module
        from .models import msdnet_config as msdnet_config_module
    except ImportError:  # pragma: no cover - depends on the installed version
        return table
    table["msdnet"] = _Architecture(
        "msdnet",
        msdnet_config_module.MSDNetConfig,
        msdnet_module.MSDNet,
        msdnet_config_module.REFERENCE_OPTION_NAMES,
        msdnet_config_module.REFERENCE_DEFAULTS,
    )
    return table


def _architecture(name: str) -> _Architecture:
    table = _architectures()
    key = name.lower()
    if key not in table:
        known = ", ".join(a.name for a in table.values())
        raise CLIError(f"unknown --arch {name!r}; choose from {known}")
    return table[key]


def _dataset_name(value: str) -> str:
    for name in DATASET_NAMES:
        if name.lower() == value.lower():
            return name
    raise argparse.ArgumentTypeError(
        f"unknown dataset {value!r}; choose from {', '.join(DATASET_NAMES)}"
    )


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    exp = parser.add_argument_group("experiment (original names)")
    exp.add_argument("--save", default=None, metavar="SAVE", help="run folder")
    exp.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue from checkpoint_last.pt in --save",
    )
    exp.add_argument(
        "--evalmode",
        default=None,
        choices=["anytime", "dynamic", "both"],
        help="evaluate --evaluate-from instead of training (anytime, dynamic = budgeted, both)",
    )
    exp.add_argument("--evaluate-from", default="", metavar="PATH", help="checkpoint to evaluate")
    exp.add_argument(
        "--print-freq", "-p", default=10, type=int, metavar="N", help="print every N batches"
    )
    exp.add_argument("--seed", default=None, type=int, help="random seed (default 0)")
    exp.add_argument("--gpu", default=None, type=str, help="sets CUDA_VISIBLE_DEVICES")

    data = parser.add_argument_group("data (original names)")
    data.add_argument(
        "--data",
        metavar="D",
        default=None,
        type=_dataset_name,
        help=f"one of {', '.join(DATASET_NAMES)} (default cifar10)",
    )
    data.add_argument("--data-root", metavar="DIR", default=None, help="dataset folder")
    data.add_argument(
        "--use-valid",
        action="store_true",
        default=None,
        help="hold out a validation split (calibrate thresholds on it, not on test)",
    )
    data.add_argument("-j", "--workers", default=4, type=int, metavar="N", help="loader workers")

    arch = parser.add_argument_group(
        "architecture (original names; defaults are the original's unless --preset is given)"
    )
    arch.add_argument("--arch", type=str, default=None, help="RANet (default) or msdnet")
    arch.add_argument("--reduction", default=None, type=float, metavar="C")
    arch.add_argument("--nBlocks", type=int, default=None)
    arch.add_argument("--nChannels", type=int, default=None)
    arch.add_argument("--growthRate", type=int, default=None)
    arch.add_argument("--grFactor", default=None, type=str)
    arch.add_argument("--bnFactor", default=None, type=str)
    arch.add_argument("--block-step", type=int, default=None)
    arch.add_argument("--scale-list", default=None, type=str)
    arch.add_argument("--compress-factor", default=None, type=float)
    arch.add_argument("--step", type=int, default=None)
    arch.add_argument("--stepmode", type=str, default=None, choices=["even", "lg", "lin_grow"])
    arch.add_argument("--bnAfter", action="store_true", default=True, help="always on")
    arch.add_argument("--base", type=int, default=None, help="MSDNet: layers in block 1")
    arch.add_argument("--prune", type=str, default=None, choices=["min", "max"], help="MSDNet")
    arch.add_argument("--bottleneck", action="store_true", default=None, help="MSDNet")
    arch.add_argument("--preset", default=None, metavar="NAME", help="named configuration")

    optim = parser.add_argument_group("optimisation (original names)")
    optim.add_argument("--epochs", default=300, type=int, metavar="N")
    optim.add_argument("--start-epoch", default=0, type=int, metavar="N")
    optim.add_argument("-b", "--batch-size", default=64, type=int, metavar="N")
    optim.add_argument("--optimizer", default="sgd", choices=["sgd", "rmsprop", "adam"])
    optim.add_argument("--lr", "--learning-rate", default=0.1, type=float, metavar="LR")
    optim.add_argument("--lr-type", default="multistep", choices=["cosine", "multistep"])
    optim.add_argument("--decay-rate", default=0.1, type=float, metavar="N")
    optim.add_argument("--momentum", default=0.9, type=float, metavar="M")
    optim.add_argument("--weight-decay", "--wd", default=1e-4, type=float, metavar="W")

    extra = parser.add_argument_group("adanet additions")
    extra.add_argument("--amp", default=None, choices=["bf16", "fp16"], help="autocast dtype")
    extra.add_argument("--channels-last", action="store_true", help="channels-last tensors")
    extra.add_argument("--loss", default="ce", choices=["ce", "distill"], help="training loss")
    extra.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    extra.add_argument(
        "--cost-convention",
        default="actual",
        choices=["actual", "reference"],
        help="how MACs are counted (see adanet.costs)",
    )
    extra.add_argument("--download", action="store_true", help="download CIFAR if missing")
    extra.add_argument("--no-progress", action="store_true", help="no progress bars")
    extra.add_argument(
        "--budget-stride", default=1, type=int, choices=range(1, 40), metavar="K",
        help="run every K-th budget of the reference sweep for real (default 1: all 39)",
    )  # fmt: skip
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``adanet`` argument parser with its ``train`` and ``eval`` sub-commands."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="adanet",
        description="Train and evaluate early-exit networks (RANet, MSDNet).",
    )
    parser.add_argument("--version", action="version", version=f"adanet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    commands.add_parser(
        "train",
        parents=[common],
        help="train (original main.py flags), then evaluate",
        description="Train a network, then evaluate it anytime and budgeted with real early "
        "exit. With --evalmode, evaluate --evaluate-from instead (as the original).",
    )
    commands.add_parser(
        "eval",
        parents=[common],
        help="evaluate a saved model",
        description="Evaluate a saved model (--save DIR, or --evaluate-from PATH) anytime and "
        "budgeted with real early exit.",
    )
    return parser


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def _parse_list(name: str, value: Any) -> Any:
    if name not in _LIST_OPTIONS:
        return value
    try:
        return parse_dash_list(f"--{name}", value)
    except ValueError as error:
        raise CLIError(str(error)) from None


def build_config(args: argparse.Namespace) -> tuple[str, Any]:
    """The architecture name and model config a parsed command line asks for.

    Start from ``--preset`` if given, else from the original ``args.py`` defaults; every
    architecture flag given explicitly overrides; ``num_classes`` and the stem variant follow
    ``--data`` (``digits``: 10 classes, CIFAR stem).

    Raises:
        CLIError: Unknown architecture or preset, or an invalid combination of options.
    """
    arch = _architecture(args.arch or "RANet")
    data = args.data or "cifar10"
    variant, num_classes = REFERENCE_DATASETS["digits" if data == "digits-affine" else data]
    names = arch.reference_names
    if args.preset:
        try:
            values: dict[str, Any] = dict(arch.config_cls.preset(args.preset).to_dict())
        except ValueError as error:
            raise CLIError(str(error)) from None
    else:
        values = {}
        for reference, field_name in names.items():
            default = arch.defaults[reference]
            if reference == "stepmode" and default is None:
                default = "lin_grow"  # the original MSDNet grows linearly unless told "even"
            values[field_name] = _parse_list(reference, default)
    for reference, field_name in names.items():
        given = getattr(args, reference, None)
        if given is not None:
            values[field_name] = _parse_list(reference, given)
    values["num_classes"] = num_classes
    values["variant"] = variant
    try:
        config = arch.config_cls.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CLIError(f"invalid {arch.name} configuration: {error}") from None
    return arch.name, config


def reference_args_line(args: argparse.Namespace, arch: str, config: Any) -> str:
    """The ``Namespace(...)`` line the original writes to ``args.txt``, with the architecture
    options of the config actually built (so ``RANetConfig.from_reference_args`` rebuilds it)."""
    values: dict[str, Any] = {
        key: value
        for key, value in vars(args).items()
        if key != "command" and (value is None or isinstance(value, bool | int | float | str))
    }
    names = _architecture(arch).reference_names
    fields = config.to_dict()
    for reference, field_name in names.items():
        value = fields[field_name]
        values[reference] = list(value) if isinstance(value, list | tuple) else value
    values["arch"] = arch
    values["data"] = args.data or "cifar10"
    values["nScales"] = len(fields.get("growth_factors", ()))
    values["num_classes"] = fields["num_classes"]
    values["splits"] = ["train", "val", "test"] if args.use_valid else ["train", "val"]
    return repr(argparse.Namespace(**values))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class _Printer:
    """Prints on rank 0 only, flushing so logs interleave sensibly with other output."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, *parts: object, error: bool = False) -> None:
        if self.enabled:
            print(*parts, file=sys.stderr if error else sys.stdout, flush=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional for adanet itself
        pass


def _amp_dtype(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    if args.amp is None:
        return None
    if args.amp == "fp16":
        if device.type != "cuda":
            raise CLIError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        return torch.float16
    return torch.bfloat16


def _load_data(args: argparse.Namespace, seed: int) -> DataSplits:
    data = args.data or "cifar10"
    if data not in ("digits", "digits-affine") and args.data_root is None:
        raise CLIError(f"--data {data} needs --data-root DIR (the folder holding the dataset)")
    try:
        return build_datasets(
            data, args.data_root, use_valid=bool(args.use_valid), seed=seed, download=args.download
        )
    except (FileNotFoundError, ImportError, ValueError) as error:
        raise CLIError(f"cannot load --data {data}: {error}") from None


def _make_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if args.optimizer == "sgd":
        # The original: plain (not Nesterov) momentum SGD with L2 weight decay.
        return torch.optim.SGD(
            params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
    if args.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
    return torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)


def _write_json(path: Path, payload: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _run_info(args: argparse.Namespace, arch: str, config: Any, seed: int) -> dict[str, Any]:
    return {
        "arch": arch,
        "config": config.to_dict(),
        "data": args.data or "cifar10",
        "data_root": args.data_root,
        "use_valid": bool(args.use_valid),
        "seed": seed,
    }


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _format_fractions(fractions: Sequence[float]) -> str:
    return " ".join(f"{f:.2f}" for f in fractions)


def evaluate_run(
    model: EarlyExitNetwork,
    loaders: DataLoaders,
    image_shape: Sequence[int],
    save: Path,
    *,
    evalmode: str = "both",
    convention: Convention = "actual",
    info: Mapping[str, Any] | None = None,
    say: Callable[..., None] = print,
    ps: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Anytime and budgeted evaluation of ``model``; writes metrics, policies and plots.

    The budgeted thresholds are calibrated on the validation split when there is one (else,
    as the original without ``--use-valid``, on the test split, with a warning); every
    calibrated policy is then run for real with early exit over the test loader.
    """
    model.eval()
    costs = [c.macs for c in measure_exit_costs(model, tuple(image_shape), convention)]
    test = evaluate_anytime(model, loaders.test, costs=costs)
    full = costs[-1]
    metrics: dict[str, Any] = {
        "cost_convention": convention,
        **(dict(info) if info else {}),
        "num_test": int(test.targets.shape[0]),
        "full_macs": full,
        "anytime": [
            {"exit": r.exit, "macs": r.macs, "top1": r.top1, "top5": r.top5} for r in test.records
        ],
    }
    say(f"\nAnytime prediction on the test split (MACs per image, '{convention}' convention):")
    say(f"{'exit':>4}  {'MMACs':>9}  {'% full':>6}  {'top-1':>7}  {'top-5':>7}")
    for r in test.records:
        say(
            f"{r.exit:>4}  {r.macs / 1e6:>9.3f}  {100 * r.macs / full:>5.1f}%  "
            f"{100 * r.top1:>6.2f}%  {100 * r.top5:>6.2f}%"
        )
    try:
        from .plots import plot_anytime, plot_budgeted
    except ImportError:  # pragma: no cover - plots.py ships with adanet
        plot_anytime = plot_budgeted = None  # type: ignore[assignment]
    plots_ok = True
    try:
        if plot_anytime is not None:
            plot_anytime(test.records, save / "anytime.png")
    except ImportError as error:
        plots_ok = False
        say(f"note: no plots ({error})")

    if evalmode in ("dynamic", "both"):
        val: AnytimeEvaluation
        if loaders.val is not None:
            val = evaluate_anytime(model, loaders.val, costs=costs)
            calibration = "validation"
        else:
            say(
                "warning: no validation split (run with --use-valid to hold one out): the "
                "early-exit thresholds are tuned on the test data, as the original did, so the "
                "budgeted accuracy is optimistic",
                error=True,
            )
            val = test
            calibration = "test"
        with warnings.catch_warnings():
            # Already said above, once and in plain words.
            warnings.simplefilter("ignore", UserWarning)
            records = budgeted_sweep(val.logits, val.targets, test.logits, test.targets, costs, ps)
        rows: list[dict[str, Any]] = []
        mismatches = 0
        for record in records:
            real = evaluate_policy(model, loaders.test, record.policy, costs=costs)
            if abs(real.accuracy - record.accuracy) > 1e-12:
                mismatches += 1
            rows.append(
                {
                    "p": record.p,
                    "mean_macs": real.mean_cost,
                    "accuracy": real.accuracy,
                    "seconds_per_image": real.seconds_per_image,
                    "exit_fractions": list(real.exit_fractions),
                    "simulated_accuracy": record.accuracy,
                    "simulated_mean_macs": record.mean_cost,
                }
            )
        metrics["calibration_split"] = calibration
        metrics["num_calibration"] = int(val.targets.shape[0])
        metrics["budgeted"] = rows
        metrics["real_vs_simulated_mismatches"] = mismatches
        _write_json(
            save / "policies.json",
            {
                "cost_convention": convention,
                "calibration_split": calibration,
                "costs": costs,
                "policies": [
                    {"p": r.p, "policy": r.policy.to_dict(), "test_accuracy": r.accuracy}
                    for r in records
                ],
            },
        )
        say(
            f"\nBudgeted batch classification: thresholds calibrated on the {calibration} split "
            f"({metrics['num_calibration']} images), run for real with early exit on the test "
            f"split ({metrics['num_test']} images):"
        )
        say(f"{'p':>5}  {'MMACs':>9}  {'% full':>6}  {'top-1':>7}  {'ms/img':>7}  exit fractions")
        for row in rows:
            say(
                f"{row['p']:>5.2f}  {row['mean_macs'] / 1e6:>9.3f}  "
                f"{100 * row['mean_macs'] / full:>5.1f}%  {100 * row['accuracy']:>6.2f}%  "
                f"{1e3 * row['seconds_per_image']:>7.3f}  "
                f"{_format_fractions(row['exit_fractions'])}"
            )
        if mismatches:
            say(
                f"warning: for {mismatches} budgets the real early-exit accuracy differs from "
                "the simulated one (confidences within rounding of a threshold)",
                error=True,
            )
        else:
            say("real early exit reproduced the simulated accuracy at every budget")
        try:
            if plots_ok and plot_budgeted is not None:
                plot_budgeted(rows, save / "budgeted.png", {"anytime exits": test.records})
        except ImportError as error:
            say(f"note: no plots ({error})")
    _write_json(save / "metrics.json", metrics)
    say(f"\nwrote {save / 'metrics.json'}")
    return metrics


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _build_model(arch: str, config: Any) -> EarlyExitNetwork:
    model: EarlyExitNetwork = _architecture(arch).model_cls(config)
    return model


def _load_weights(model: EarlyExitNetwork, path: Path, say: Callable[..., None]) -> None:
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        checkpoint = {}
    if isinstance(checkpoint.get("model"), Mapping) and str(
        checkpoint.get("format", "")
    ).startswith("adanet-"):
        try:
            model.load_state_dict(read_state_dict(path))
        except RuntimeError as error:
            raise CLIError(f"{path} was made for another model: {str(error)[:300]}") from None
        return
    try:
        load_reference_checkpoint(model, path)  # the originals' .pth.tar files
    except (CheckpointError, FileNotFoundError) as error:
        raise CLIError(str(error)) from None
    say(f"loaded the original-format checkpoint {path}")


def _eval_command(args: argparse.Namespace, ctx: DistributedContext, say: _Printer) -> int:
    if not args.save and not args.evaluate_from:
        raise CLIError("adanet eval needs --save DIR (a run folder) or --evaluate-from PATH")
    if args.evaluate_from:
        path = Path(args.evaluate_from)
    else:
        folder = Path(args.save)
        path = folder / BEST_MODEL
        if not path.is_file():
            path = folder / LAST_CHECKPOINT
    if not path.is_file():
        raise CLIError(f"no checkpoint to evaluate at {path}")
    save = Path(args.save) if args.save else path.parent
    # The run's own settings, unless the command line says otherwise.
    saved: dict[str, Any] = {}
    for candidate in (save / "config.json", path.parent / "config.json"):
        if candidate.is_file():
            saved = json.loads(candidate.read_text(encoding="utf-8"))
            break
    stored: dict[str, Any] = {}
    with contextlib.suppress(CheckpointError):
        stored = load_checkpoint(path)
    arch_name: str
    if isinstance(stored.get("config"), Mapping) and stored.get("arch"):
        arch_name = _architecture(str(stored["arch"])).name
        config = _architecture(arch_name).config_cls.from_dict(stored["config"])
    elif saved.get("config") is not None and not _explicit_arch(args):
        arch_name = _architecture(str(saved["arch"])).name
        config = _architecture(arch_name).config_cls.from_dict(saved["config"])
    else:
        if saved.get("data") and args.data is None:
            args.data = saved["data"]
        arch_name, config = build_config(args)
    if args.data is None:
        args.data = saved.get("data", "cifar10")
    if args.data_root is None:
        args.data_root = saved.get("data_root")
    if args.use_valid is None:
        args.use_valid = saved.get("use_valid", False)
    seed = args.seed if args.seed is not None else int(saved.get("seed", 0))
    splits = _load_data(args, seed)
    loaders = build_loaders(splits, args.batch_size, args.workers, seed=seed)
    model = _build_model(arch_name, config)
    _load_weights(model, path, say)
    model.to(ctx.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    save.mkdir(parents=True, exist_ok=True)
    say(f"evaluating {path} ({arch_name}, {args.data})")
    metrics = evaluate_run(
        model,
        loaders,
        (splits.in_channels, splits.image_size, splits.image_size),
        save,
        evalmode=args.evalmode or "both",
        convention=args.cost_convention,
        info={"arch": arch_name, "data": args.data, "checkpoint": str(path)},
        say=say,
        ps=DEFAULT_PS[:: args.budget_stride],
    )
    write_run_report(model, loaders.test, save, metrics, say=say)
    return 0


def _explicit_arch(args: argparse.Namespace) -> bool:
    names = set(_RANET_DEFAULTS) | {"base", "prune", "bottleneck", "preset", "arch"}
    return any(getattr(args, name, None) is not None for name in names)


def _train_command(args: argparse.Namespace, ctx: DistributedContext, say: _Printer) -> int:
    if args.evalmode is not None:
        # The original main.py evaluates --evaluate-from when --evalmode is given.
        if not args.evaluate_from:
            raise CLIError("--evalmode needs --evaluate-from PATH (as in the original)")
        return _eval_command(args, ctx, say)
    seed = 0 if args.seed is None else args.seed
    args.seed = seed
    args.data = args.data or "cifar10"
    args.use_valid = bool(args.use_valid)
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    save = Path(args.save or f"save/default-{time.time()}")
    args.save = str(save)
    _seed_everything(seed)
    arch, config = build_config(args)
    device = ctx.device
    amp_dtype = _amp_dtype(args, device)
    if args.sync_bn and ctx.distributed and device.type != "cuda":
        raise CLIError("--sync-bn needs CUDA devices (SyncBatchNorm does not run on the CPU)")
    splits = _load_data(args, seed)
    if splits.num_classes != config.num_classes:
        raise CLIError(
            f"--data {args.data} has {splits.num_classes} classes but the config "
            f"{config.num_classes}"
        )
    loaders = build_loaders(
        splits, args.batch_size, args.workers, distributed=ctx.distributed, seed=seed
    )
    model = _build_model(arch, config)
    if args.sync_bn and ctx.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    elif args.sync_bn:
        say("note: --sync-bn has no effect in a single process")
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = _make_optimizer(args, model)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    loss_fn = MultiExitLoss(args.loss)

    info = _run_info(args, arch, config, seed)
    if ctx.is_main:
        save.mkdir(parents=True, exist_ok=True)
        _write_json(save / "config.json", info)
        (save / "args.txt").write_text(reference_args_line(args, arch, config) + "\n")

    state = TrainState(next_epoch=args.start_epoch)
    last = save / LAST_CHECKPOINT
    if args.resume:
        if last.is_file():
            stored = load_checkpoint(last)
            if stored.get("config") is not None and stored.get("config") != config.to_dict():
                raise CLIError(
                    f"{last} was trained with another configuration ({stored.get('arch')}: "
                    f"{stored.get('config')}); resume with the same architecture flags"
                )
            state = resume(last, model, optimizer, scaler=scaler, loader=loaders.train)
            say(
                f"=> resumed from {last}: continuing at epoch {state.next_epoch} of "
                f"{args.epochs} (epochs 0-{state.next_epoch - 1} done)"
            )
        else:
            say(f"=> --resume: no checkpoint in {save}; starting from scratch")
    elif last.is_file():
        say(f"note: replacing the checkpoints in {save} (pass --resume to continue them)")

    schedule = LRSchedule(
        base_lr=args.lr,
        epochs=args.epochs,
        lr_type=args.lr_type,
        decay_rate=args.decay_rate,
        step_every=30 if args.data == "ImageNet" else None,
    )
    num_params = sum(p.numel() for p in model.parameters())
    say(
        f"training {arch} ({num_params / 1e6:.3f}M parameters, {model.num_exits} exits) on "
        f"{args.data} for {args.epochs} epochs on {device}"
        + (f" x {ctx.world_size} processes ({ctx.backend})" if ctx.distributed else "")
    )
    show_bar = not args.no_progress and sys.stderr.isatty()

    def on_batch(epoch: int, index: int, total: int, loss: float) -> None:
        if not show_bar and args.print_freq > 0 and index % args.print_freq == 0:
            say(f"Epoch: [{epoch}][{index + 1}/{total}]\tLoss {loss:.4f}")

    def on_epoch(record: Mapping[str, Any]) -> None:
        line = (
            f"epoch {record['epoch']:>3}  lr {record['lr']:.4f}  "
            f"train loss {record['train_loss']:.4f}  "
            f"train top-1 (last exit) {100 * record['train_top1'][-1]:.2f}%"
        )
        if record["val_top1"] is not None:
            line += f"  val top-1 (last exit) {100 * record['val_top1'][-1]:.2f}%"
        say(line + ("  *best*" if record["is_best"] else ""))

    val_loader = loaders.val if loaders.val is not None else loaders.test
    started = time.perf_counter()
    state = fit(
        net,
        loaders.train,
        val_loader,  # without --use-valid the original validates on the test set, too
        optimizer,
        loss_fn,
        epochs=args.epochs,
        lr_schedule=schedule,
        device=device,
        state=state,
        save_dir=save,
        arch=arch,
        config=config.to_dict(),
        amp_dtype=amp_dtype,
        scaler=scaler,
        channels_last=args.channels_last,
        progress=not args.no_progress,
        on_batch=on_batch,
        on_epoch=on_epoch,
    )
    elapsed = time.perf_counter() - started
    if state.best_epoch >= 0:
        say(f"best val top-1 (last exit) {100 * state.best:.2f}% at epoch {state.best_epoch}")
    barrier()
    if not ctx.is_main:
        return 0
    say("evaluating the final model")
    metrics = evaluate_run(
        model,
        loaders,
        (splits.in_channels, splits.image_size, splits.image_size),
        save,
        evalmode="both",
        convention=args.cost_convention,
        info={
            "arch": arch,
            "data": args.data,
            "checkpoint": str(last),
            "train": {
                "epochs": args.epochs,
                "seconds_this_run": elapsed,
                "world_size": ctx.world_size,
                "best_val_top1": state.best if math.isfinite(state.best) else None,
                "best_epoch": state.best_epoch,
                "history": state.history,
            },
        },
        say=say,
        ps=DEFAULT_PS[:: args.budget_stride],
    )
    write_run_report(model, loaders.test, save, metrics, say=say)  # redraws plots with CIs
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adanet`` command; returns the exit status.

    A command line that starts with an option (as the original ``main.py``'s do) is taken as
    ``adanet train ...``.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0].startswith("-") and arguments[0] not in _TOP_LEVEL_OPTIONS:
        arguments.insert(0, "train")
    args = build_parser().parse_args(arguments)
    if args.gpu:
        # Before anything touches CUDA, as the original does.
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    ctx: DistributedContext | None = None
    say = _Printer(True)
    try:
        ctx = init_distributed()
        say = _Printer(ctx.is_main)
        if args.command == "eval":
            return _eval_command(args, ctx, say)
        return _train_command(args, ctx, say)
    except CLIError as error:
        say(f"adanet: error: {error}", error=True)
        return 2
    except NonFiniteLossError as error:
        _Printer(True)(f"adanet: training stopped: {error}", error=True)
        return 3
    except CheckpointError as error:
        say(f"adanet: error: {error}", error=True)
        return 2
    finally:
        cleanup_distributed()
