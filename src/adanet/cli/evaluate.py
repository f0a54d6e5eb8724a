"""``adanet eval``: evaluate a saved model anytime and budgeted with real early exit.

Results go to ``eval_metrics.json``, ``eval_policies.json`` and ``eval_*.png`` in the run
folder, never over the training run's own ``metrics.json``; an earlier evaluation there is
kept unless ``--overwrite`` is given. ``--policy SPEC`` also runs a policy of one's own (a
JSON file or ``package.module:name``, see :mod:`adanet.cli.policy_spec`) with real early
exit; ``--max-accuracy-drop`` calibrates a guaranteed one on the run's validation split.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from adanet._safe_load import CheckpointError
from adanet.cli.console import Printer
from adanet.cli.errors import CLIError
from adanet.cli.options import run_options
from adanet.cli.policy_runs import PolicyOptions, add_policy_options
from adanet.cli.policy_spec import check_fits, load_policy
from adanet.cli.run_evaluation import evaluate_run
from adanet.cli.run_folder import EVAL_FILES, remove_stale_temporaries
from adanet.cli.runtime import load_data, load_weights, read_run_config
from adanet.cli.spec import RunSpec, architecture, architecture_option_names, build_model
from adanet.data import build_loaders
from adanet.training import BEST_MODEL, LAST_CHECKPOINT, load_checkpoint
from adanet.training.distributed import DistributedContext

__all__ = ["EVAL_PREFIX", "NAME", "register", "run"]

NAME = "eval"

EVAL_PREFIX = "eval_"
"""Prefix of the files ``adanet eval`` writes (``eval_metrics.json``, ...)."""


def register(commands: Any) -> None:
    """Add the ``eval`` sub-command to ``commands`` (argparse sub-parsers)."""
    parser = commands.add_parser(
        NAME,
        parents=[run_options()],
        help="evaluate a saved model",
        description="Evaluate a saved model (--save DIR, or --evaluate-from PATH) anytime and "
        "budgeted with real early exit, into eval_metrics.json and friends.",
    )
    add_policy_options(parser)
    parser.add_argument(
        "--policy",
        default=None,
        metavar="SPEC",
        help="also run this policy with real early exit: a policy JSON file, or "
        "package.module:name of an ExitDecider (or of a zero-argument callable returning one)",
    )
    parser.set_defaults(run=run)


def _checkpoint_path(args: argparse.Namespace) -> Path:
    if args.evaluate_from:
        path = Path(args.evaluate_from)
    else:
        folder = Path(args.save)
        path = folder / BEST_MODEL
        if not path.is_file():
            path = folder / LAST_CHECKPOINT
    if not path.is_file():
        raise CLIError(f"no checkpoint to evaluate at {path}")
    return path


def _spec(args: argparse.Namespace, path: Path, folder: Path) -> RunSpec:
    """The run's own settings, unless the command line says otherwise; the architecture
    and config come from the checkpoint when it holds them."""
    saved = read_run_config(folder / "config.json") or read_run_config(path.parent / "config.json")
    spec = RunSpec.from_args(args, saved)
    stored: dict[str, Any] = {}
    with contextlib.suppress(CheckpointError):
        stored = load_checkpoint(path)
    explicit = any(
        getattr(args, name, None) is not None
        for name in (*architecture_option_names(), "arch", "preset")
    )
    source: Mapping[str, Any] | None = None
    if isinstance(stored.get("config"), Mapping) and stored.get("arch"):
        source = stored
    elif isinstance(saved.get("config"), Mapping) and saved.get("arch") and not explicit:
        source = saved
    if source is None:
        return spec
    arch = architecture(str(source["arch"]))
    try:
        config = arch.config_cls.from_dict(source["config"])
    except (TypeError, ValueError) as error:
        raise CLIError(f"the saved {arch.name} configuration is invalid: {error}") from None
    return dataclasses.replace(spec, arch=arch.name, config=config)


def run(args: argparse.Namespace, ctx: DistributedContext, say: Printer) -> int:
    """Run ``adanet eval``; returns the exit status.

    Raises:
        CLIError: No checkpoint, an unreadable run folder, or an earlier evaluation that
            ``--overwrite`` does not allow replacing.
    """
    if not args.save and not args.evaluate_from:
        raise CLIError("adanet eval needs --save DIR (a run folder) or --evaluate-from PATH")
    if args.save and Path(args.save).exists() and not Path(args.save).is_dir():
        raise CLIError(f"--save {args.save!r} is a file, not a folder")
    path = _checkpoint_path(args)
    folder = Path(args.save) if args.save else path.parent
    spec = _spec(args, path, folder)
    options = PolicyOptions.from_args(args)
    options.check_calibration_split(spec.use_valid)
    if options.policy_spec is not None:
        options = dataclasses.replace(options, policy=load_policy(options.policy_spec))
    earlier = [name for name in EVAL_FILES if (folder / name).exists()]
    if earlier and not spec.overwrite:
        raise CLIError(
            f"{folder} already holds an evaluation ({', '.join(earlier)}); pass --overwrite "
            "to replace it, or another --save folder"
        )
    splits = load_data(spec)
    loaders = build_loaders(splits, spec.batch_size, spec.workers, seed=spec.seed)
    model = build_model(spec.arch, spec.config)
    load_weights(model, path, say)
    shape = (splits.in_channels, splits.image_size, splits.image_size)
    if options.policy is not None:
        check_fits(
            options.policy,
            str(options.policy_spec),
            num_exits=model.num_exits,
            num_classes=splits.num_classes,
            input_size=shape,
            cost_convention=spec.cost_convention,
        )
    model.to(ctx.device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    if not ctx.is_main:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder, EVAL_FILES)
    say(f"evaluating {path} ({spec.arch}, {spec.data})")
    evaluate_run(
        model,
        loaders,
        shape,
        folder,
        evalmode=spec.evalmode or "both",
        convention=spec.cost_convention,  # type: ignore[arg-type]
        info={"arch": spec.arch, "data": spec.data, "checkpoint": str(path)},
        say=say,
        prefix=EVAL_PREFIX,
        options=options,
    )
    return 0
