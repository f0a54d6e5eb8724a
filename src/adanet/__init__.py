"""adanet: adaptive-inference building blocks for PyTorch.

Compose multi-resolution early-exit networks from :mod:`adanet.blocks` or use the published
ones (:class:`RANet`), measure what each exit costs, calibrate an
:class:`EarlyExitPolicy`, and run real batched early exit with :func:`early_exit`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import data, losses
from .blocks import (
    CrossScaleDenseUnit,
    DenseLayer,
    ExitHead,
    FusionBlock,
    MultiScaleDenseLayer,
    MultiScaleStem,
    MultiScaleTransition,
    ScaleBlock,
    ScaleBranch,
)
from .budgeted import BudgetRecord, budgeted_sweep
from .checkpoint import CheckpointError, load_reference_checkpoint, save_atomic
from .costs import ExitCost, measure_exit_costs
from .evaluation import (
    AnytimeEvaluation,
    AnytimeRecord,
    PolicyEvaluation,
    evaluate_anytime,
    evaluate_policy,
)
from .exit_policy import ExitPolicy
from .export import ExportedEarlyExit, export_stages
from .factory import create_model, list_models, register_model
from .feature_info import FeatureInfo
from .inference import EarlyExitResult, early_exit
from .latency import measure_exit_latency
from .losses import MultiExitLoss
from .models import MSDNet, MSDNetConfig, RANet, RANetConfig
from .onnx import export_onnx
from .optimize import compile_for_early_exit, optimize_for_inference
from .patience import PatienceExitPolicy
from .policy import EarlyExitPolicy, geometric_exit_fractions
from .pretrained import load_pretrained, save_pretrained
from .pretrained_cfg import PretrainedCfg
from .protocol import EarlyExitNetwork, select_samples
from .quantize import quantize_for_inference
from .risk import calibrate, calibrate_risk
from .temperature import fit_temperatures

try:
    __version__ = version("adanet-torch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "BudgetRecord",
    "CheckpointError",
    "CrossScaleDenseUnit",
    "DenseLayer",
    "EarlyExitNetwork",
    "EarlyExitPolicy",
    "EarlyExitResult",
    "ExitCost",
    "ExitHead",
    "ExitPolicy",
    "ExportedEarlyExit",
    "FeatureInfo",
    "FusionBlock",
    "MSDNet",
    "MSDNetConfig",
    "MultiExitLoss",
    "MultiScaleDenseLayer",
    "MultiScaleStem",
    "MultiScaleTransition",
    "PatienceExitPolicy",
    "PolicyEvaluation",
    "PretrainedCfg",
    "RANet",
    "RANetConfig",
    "ScaleBlock",
    "ScaleBranch",
    "__version__",
    "budgeted_sweep",
    "calibrate",
    "calibrate_risk",
    "compile_for_early_exit",
    "create_model",
    "data",
    "early_exit",
    "evaluate_anytime",
    "evaluate_policy",
    "export_onnx",
    "export_stages",
    "fit_temperatures",
    "geometric_exit_fractions",
    "list_models",
    "load_pretrained",
    "load_reference_checkpoint",
    "losses",
    "measure_exit_costs",
    "measure_exit_latency",
    "optimize_for_inference",
    "quantize_for_inference",
    "register_model",
    "save_atomic",
    "save_pretrained",
    "select_samples",
]
