"""adanet: adaptive-inference building blocks for PyTorch.

Compose multi-resolution early-exit networks from :mod:`adanet.blocks` or use the published
ones (:class:`RANet`), measure what each exit costs, calibrate an
:class:`EarlyExitPolicy`, and run real batched early exit with :func:`early_exit`.
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
from .budgeted import BudgetRecord, budgeted_sweep
from .checkpoint import CheckpointError, load_reference_checkpoint, save_atomic
from .costs import ExitCost, measure_exit_costs
from .inference import EarlyExitResult, early_exit
from .evaluation import (
    AnytimeEvaluation,
    AnytimeRecord,
    PolicyEvaluation,
    evaluate_anytime,
    evaluate_policy,
)
from .models import RANet, RANetConfig
from .policy import EarlyExitPolicy, geometric_exit_fractions
from .protocol import EarlyExitNetwork, select_samples

try:
    __version__ = version("adanet-torch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "BudgetRecord",
    "CheckpointError",
    "DenseLayer",
    "EarlyExitNetwork",
    "EarlyExitPolicy",
    "EarlyExitResult",
    "ExitCost",
    "ExitHead",
    "FusionBlock",
    "MultiScaleStem",
    "PolicyEvaluation",
    "RANet",
    "RANetConfig",
    "ScaleBlock",
    "ScaleBranch",
    "__version__",
    "budgeted_sweep",
    "early_exit",
    "evaluate_anytime",
    "evaluate_policy",
    "geometric_exit_fractions",
    "load_reference_checkpoint",
    "measure_exit_costs",
    "save_atomic",
    "select_samples",
]
