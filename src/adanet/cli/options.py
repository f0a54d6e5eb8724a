"""The options of ``adanet train`` and ``adanet eval``, with types that reject bad values.

Every value is checked while parsing, so a mistake (``-b 0``, ``--lr -1``, ``--seed -1``)
gives argparse's ``adanet train: error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from adanet.compat.args import parse_dash_list
from adanet.data import DATASET_NAMES

__all__ = [
    "dash_list",
    "dataset_name",
    "finite_float",
    "int_at_least",
    "run_options",
    "seed_value",
]

_MAX_SEED = 2**32 - 1  # NumPy's legacy seeding, which the runs also seed, takes 32 bits


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def finite_float(minimum: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number ``>= minimum`` (``> minimum`` if not inclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        low_ok = value >= minimum if inclusive else value > minimum
        if not math.isfinite(value) or not low_ok:
            bound = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(
                f"must be a finite number {bound} {minimum}, got {text}"
            )
        return value

    parse.__name__ = "number"
    return parse


def seed_value(text: str) -> int:
    """An argparse type: a seed in ``[0, 2**32)``."""
    value = int_at_least(0)(text)
    if value > _MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be < 2**32, got {value}")
    return value


def dash_list(text: str) -> tuple[int, ...]:
    """An argparse type: the originals' dash-separated integer lists (``4-2-1``)."""
    try:
        parsed = parse_dash_list("the list", text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return tuple(parsed)


def dataset_name(value: str) -> str:
    """An argparse type: a dataset name, matched case-insensitively."""
    for name in DATASET_NAMES:
        if name.lower() == value.lower():
            return name
    raise argparse.ArgumentTypeError(
        f"unknown dataset {value!r}; choose from {', '.join(DATASET_NAMES)}"
    )


def _experiment_options(parser: argparse.ArgumentParser) -> None:
    exp = parser.add_argument_group("experiment (original names)")
    exp.add_argument("--save", default=None, metavar="SAVE", help="run folder")
    exp.add_argument(
        "--resume", action="store_true", help="continue from checkpoint_last.pt in --save"
    )
    exp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run (train) or evaluation (eval) already in --save",
    )
    exp.add_argument(
        "--evalmode",
        default=None,
        choices=["anytime", "dynamic", "both"],
        help="evaluate --evaluate-from instead of training (anytime, dynamic = budgeted, both)",
    )
    exp.add_argument("--evaluate-from", default="", metavar="PATH", help="checkpoint to evaluate")
    exp.add_argument(
        "--print-freq", "-p", default=10, type=int_at_least(0), metavar="N", help="print every N"
    )
    exp.add_argument("--seed", default=None, type=seed_value, help="random seed (default 0)")
    exp.add_argument("--gpu", default=None, type=str, help="sets CUDA_VISIBLE_DEVICES")


def _data_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (original names)")
    data.add_argument(
        "--data",
        metavar="D",
        default=None,
        type=dataset_name,
        help=f"one of {', '.join(DATASET_NAMES)} (default cifar10)",
    )
    data.add_argument("--data-root", metavar="DIR", default=None, help="dataset folder")
    data.add_argument(
        "--use-valid",
        action="store_true",
        default=None,
        help="hold out a validation split (calibrate thresholds on it, not on test)",
    )
    data.add_argument(
        "-j", "--workers", default=4, type=int_at_least(0), metavar="N", help="loader workers"
    )


def _architecture_options(parser: argparse.ArgumentParser) -> None:
    arch = parser.add_argument_group(
        "architecture (original names; defaults are the original's unless --preset is given)"
    )
    arch.add_argument("--arch", type=str, default=None, help="RANet (default) or msdnet")
    arch.add_argument("--reduction", default=None, type=float, metavar="C")
    arch.add_argument("--nBlocks", type=int, default=None)
    arch.add_argument("--nChannels", type=int, default=None)
    arch.add_argument("--growthRate", type=int, default=None)
    arch.add_argument("--grFactor", default=None, type=dash_list)
    arch.add_argument("--bnFactor", default=None, type=dash_list)
    arch.add_argument("--block-step", type=int, default=None)
    arch.add_argument("--scale-list", default=None, type=dash_list)
    arch.add_argument("--compress-factor", default=None, type=float)
    arch.add_argument("--step", type=int, default=None)
    arch.add_argument("--stepmode", type=str, default=None, choices=["even", "lg", "lin_grow"])
    arch.add_argument(
        "--bnAfter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="conv-norm-act layers (the original's; default) or, with --no-bnAfter, "
        "pre-activation norm-act-conv (RANet)",
    )
    arch.add_argument("--base", type=int, default=None, help="MSDNet: layers in block 1")
    arch.add_argument("--prune", type=str, default=None, choices=["min", "max"], help="MSDNet")
    arch.add_argument("--bottleneck", action="store_true", default=None, help="MSDNet")
    arch.add_argument("--preset", default=None, metavar="NAME", help="named configuration")


def _optimisation_options(parser: argparse.ArgumentParser) -> None:
    optim = parser.add_argument_group("optimisation (original names)")
    optim.add_argument("--epochs", default=300, type=int_at_least(1), metavar="N")
    optim.add_argument("--start-epoch", default=0, type=int_at_least(0), metavar="N")
    optim.add_argument("-b", "--batch-size", default=64, type=int_at_least(1), metavar="N")
    optim.add_argument("--optimizer", default="sgd", choices=["sgd", "rmsprop", "adam"])
    optim.add_argument(
        "--lr", "--learning-rate", default=0.1, type=finite_float(0, inclusive=False), metavar="LR"
    )
    optim.add_argument("--lr-type", default="multistep", choices=["cosine", "multistep"])
    optim.add_argument(
        "--decay-rate", default=0.1, type=finite_float(0, inclusive=False), metavar="N"
    )
    optim.add_argument("--momentum", default=0.9, type=finite_float(0), metavar="M")
    optim.add_argument("--weight-decay", "--wd", default=1e-4, type=finite_float(0), metavar="W")


def _adanet_options(parser: argparse.ArgumentParser) -> None:
    extra = parser.add_argument_group("adanet additions")
    extra.add_argument("--amp", default=None, choices=["bf16", "fp16"], help="autocast dtype")
    extra.add_argument("--channels-last", action="store_true", help="channels-last tensors")
    extra.add_argument("--loss", default="ce", choices=["ce", "distill"], help="training loss")
    extra.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    extra.add_argument(
        "--cost-convention",
        default="actual",
        choices=["actual", "reference"],
        help="how MACs are counted (see adanet.costs.counting)",
    )
    extra.add_argument("--download", action="store_true", help="download CIFAR if missing")
    extra.add_argument("--no-progress", action="store_true", help="no progress bars")
    extra.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard scalars into SAVE/tensorboard (needs the tensorboard extra)",
    )


def run_options() -> argparse.ArgumentParser:
    """A parent parser with every option of ``train`` and ``eval`` (the original's names
    plus adanet's additions)."""
    parser = argparse.ArgumentParser(add_help=False)
    _experiment_options(parser)
    _data_options(parser)
    _architecture_options(parser)
    _optimisation_options(parser)
    _adanet_options(parser)
    return parser
