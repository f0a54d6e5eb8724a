"""adanet: adaptive-inference building blocks for PyTorch.

Compose multi-resolution early-exit networks from :mod:`adanet.blocks`, or use the
published ones (:class:`RANet`), measure what each exit costs, and run real batched early
exit.
"""

from importlib.metadata import PackageNotFoundError, version

from .blocks import (
    DenseLayer,
    ExitHead,
    FusionBlock,
    MultiScaleStem,
    ScaleBlock,
    ScaleBranch,
)
from .checkpoint import CheckpointError, load_reference_checkpoint, save_atomic
from .costs import ExitCost, measure_exit_costs
from .models import RANet, RANetConfig
from .protocol import EarlyExitNetwork, select_samples

try:
    __version__ = version("adanet-torch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "CheckpointError",
    "DenseLayer",
    "EarlyExitNetwork",
    "ExitCost",
    "ExitHead",
    "FusionBlock",
    "MultiScaleStem",
    "RANet",
    "RANetConfig",
    "ScaleBlock",
    "ScaleBranch",
    "__version__",
    "load_reference_checkpoint",
    "measure_exit_costs",
    "save_atomic",
    "select_samples",
]
