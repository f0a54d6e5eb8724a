"""The ``adanet`` command: ``adanet train``, ``adanet eval`` and ``adanet export`` (also
``python -m adanet``).

``adanet train`` accepts the command line of the original RANet ``main.py`` unchanged (the
same option names, defaults and meanings; ``--data digits`` is added), so::

    adanet train --arch RANet --data-root /data --data cifar10 --step 4 --stepmode even \\
        --scale-list 1-2-3-3 --grFactor 4-2-1-1 --bnFactor 4-2-1-1 --save runs/ranet

trains the published CIFAR RANet. Added options: ``--preset NAME`` (a named config that
explicit architecture flags override), ``--amp bf16|fp16``, ``--channels-last``,
``--loss ce|distill``, ``--sync-bn``, ``--cost-convention``, ``--download``, ``--overwrite``,
``--tensorboard`` and ``--no-bnAfter``.

Run it under ``torchrun --nproc_per_node N -m adanet train ...`` for DistributedDataParallel
(NCCL on CUDA, gloo on CPU; torchrun's environment variables are read, so multi-node launches
work unchanged). Training data is sharded with a ``DistributedSampler``; every process
validates the full (unsharded) validation set after each epoch, so all agree on the best
epoch without communicating; the final anytime and budgeted evaluation runs on rank 0 only,
over the full sets, and only rank 0 writes files.

Files written into ``--save`` by ``train``: ``config.json`` (the run spec), ``args.txt`` (the
original's ``Namespace(...)`` line), ``checkpoint_last.pt``, ``model_best.pt``,
``metrics.csv`` (one line per epoch), ``metrics.json``, ``policies.json``, ``anytime.png``,
``budgeted.png`` and, with ``--tensorboard``, ``tensorboard/``; by ``eval``:
``eval_metrics.json``, ``eval_policies.json`` and ``eval_*.png``. Every file is written
atomically, and a folder holding a run is only continued (``--resume``) or replaced
(``--overwrite``) when asked.

Both ``train`` and ``eval`` accept ``--max-accuracy-drop EPS`` (``--delta``,
``--risk-method``, ``--temperatures``) to also calibrate a policy with a guarantee on the
validation split; ``eval --policy SPEC`` runs a policy of one's own. ``adanet export --save RUN
--to DIR [--onnx]`` turns a run folder into the model directory
:func:`adanet.load_pretrained` reads.

Each sub-command is one module with ``register(subparsers)`` that sets ``run`` as the
parser's default; adding one is that module plus one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from adanet._safe_load import CheckpointError
from adanet.cli import evaluate, export, train
from adanet.cli.console import Printer
from adanet.cli.errors import CLIError
from adanet.cli.run_evaluation import evaluate_run
from adanet.cli.run_folder import RunFolderError
from adanet.cli.spec import build_config, reference_args_line
from adanet.training import NonFiniteLossError
from adanet.training.distributed import DistributedContext, cleanup_distributed, init_distributed

__all__ = [
    "COMMANDS",
    "CLIError",
    "build_config",
    "build_parser",
    "evaluate_run",
    "main",
    "reference_args_line",
]

COMMANDS: tuple[ModuleType, ...] = (train, evaluate, export)
"""The sub-command modules, in ``--help`` order."""

_TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")


def build_parser() -> argparse.ArgumentParser:
    """The ``adanet`` argument parser with every sub-command of :data:`COMMANDS`."""
    from adanet import __version__

    parser = argparse.ArgumentParser(
        prog="adanet",
        description="Train and evaluate early-exit networks (RANet, MSDNet).",
    )
    parser.add_argument("--version", action="version", version=f"adanet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adanet`` command; returns the exit status.

    A command line that starts with an option (as the original ``main.py``'s do) is taken as
    ``adanet train ...``. A user's mistake is reported as ``adanet: error: ...`` with exit
    status 2 (never a traceback); a non-finite training loss gives exit status 3.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0].startswith("-") and arguments[0] not in _TOP_LEVEL_OPTIONS:
        arguments.insert(0, "train")
    args = build_parser().parse_args(arguments)
    if args.gpu:
        # Before anything touches CUDA, as the original does.
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    say = Printer(True)
    try:
        ctx: DistributedContext = init_distributed()
        say = Printer(ctx.is_main)
        status: int = args.run(args, ctx, say)
        return status
    except (CLIError, CheckpointError, RunFolderError) as error:
        say(f"adanet: error: {error}", error=True)
        return 2
    except OSError as error:
        # A folder that cannot be made or written, a full disk: the user's to fix.
        say(f"adanet: error: {error}", error=True)
        return 2
    except NonFiniteLossError as error:
        Printer(True)(f"adanet: training stopped: {error}", error=True)
        return 3
    except KeyboardInterrupt:
        say("adanet: interrupted; the last completed epoch's checkpoint is kept", error=True)
        return 130
    finally:
        cleanup_distributed()
