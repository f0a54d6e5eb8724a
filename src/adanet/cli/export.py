"""``adanet export``: turn a training run folder into a self-contained model directory.

The directory is what :func:`adanet.save_pretrained` writes (config, weights, the budgeted
policy nearest ``--p``, costs, preprocessing, checksums); :func:`adanet.load_pretrained`
reads it back. With ``--onnx`` it also holds the ONNX stages, ``manifest.json`` and
``early_exit_session.py`` under ``onnx/`` (see ``docs/how-to/deploy-onnx.md``); with ``--int8``
also their int8 copy under ``onnx_int8/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adanet.cli.console import Printer
from adanet.cli.errors import CLIError
from adanet.cli.options import finite_float, int_at_least
from adanet.training.distributed import DistributedContext

__all__ = ["NAME", "register", "run"]

NAME = "export"


def register(commands: Any) -> None:
    """Add the ``export`` sub-command to ``commands`` (argparse sub-parsers)."""
    parser = commands.add_parser(
        NAME,
        help="turn a run folder into a model directory (load_pretrained, ONNX)",
        description="Write the run in --save as a self-contained model directory that "
        "adanet.load_pretrained reads; with --onnx also the ONNX Runtime early-exit files, "
        "with --int8 their int8 copy too.",
    )
    parser.add_argument("--save", required=True, metavar="RUN", help="run folder to export")
    parser.add_argument("--to", required=True, metavar="DIR", help="model directory to write")
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="also export ONNX stages and early_exit_session.py (needs the onnx extra)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write int8 ONNX stages into onnx_int8/, calibrated on training images of the "
        "run's dataset (implies --onnx; needs the onnx extra)",
    )
    parser.add_argument(
        "--calibration-images",
        default=256,
        type=int_at_least(1),
        metavar="N",
        help="training images that calibrate the --int8 stages (default 256)",
    )
    parser.add_argument(
        "--p",
        default=1.0,
        type=finite_float(0, inclusive=False),
        metavar="P",
        help="keep the run's budgeted policy with the nearest p (default 1: equal exit shares)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier export in a non-empty --to (whole, in one swap); a folder "
        "holding other files is refused",
    )
    # main() reads these before dispatching; export has no use for them.
    parser.set_defaults(run=run, gpu=None)


def run(args: argparse.Namespace, ctx: DistributedContext, say: Printer) -> int:
    """Run ``adanet export``; returns the exit status.

    Raises:
        CLIError: No run folder, checkpoint or config; an unreadable run; a non-empty
            ``--to`` without ``--overwrite``, or holding files of its own; a ``--to`` that
            is, lies in or holds the run folder; ``--onnx`` without the ``onnx`` extra.
    """
    from adanet.cli.run_export import export_run
    from adanet.deploy.model_dir import PretrainedError

    if not ctx.is_main:
        return 0
    target = Path(args.to)
    if target.exists() and not target.is_dir():
        raise CLIError(f"--to {args.to!r} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()) and not args.overwrite:
        raise CLIError(
            f"{target} is not empty; pass --overwrite to replace its model files, or another --to"
        )
    try:
        written = export_run(
            args.save,
            target,
            args.onnx,
            p=args.p,
            int8=args.int8,
            calibration_images=args.calibration_images,
        )
    except FileNotFoundError as error:
        raise CLIError(str(error)) from None
    except (PretrainedError, ValueError) as error:
        # PretrainedError (an unreadable run) is a ValueError, as is a policy that does not fit.
        raise CLIError(f"cannot export {args.save}: {error}") from None
    except ImportError as error:
        raise CLIError(f"--{'int8' if args.int8 else 'onnx'}: {error}") from None
    where = ""
    if args.onnx or args.int8:
        where = f" (ONNX files in {written / 'onnx'}"
        where += f", int8 in {written / 'onnx_int8'})" if args.int8 else ")"
    say(f"wrote {written}{where}")
    return 0
