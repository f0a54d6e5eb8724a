"""adanet: adaptive-inference building blocks for PyTorch.

Build a multi-resolution early-exit network (:class:`RANet`, :class:`MSDNet`, or your own
from :mod:`adanet.blocks` on :class:`EarlyExitNetwork`), measure what each exit costs,
calibrate an :class:`EarlyExitPolicy`, and run real batched early exit with
:func:`early_exit`. The root holds what a first hour needs; everything else lives in its
subpackage:

* :mod:`adanet.blocks`: the layers networks are built from.
* :mod:`adanet.models`: the protocol, the published networks, the architecture registry.
* :mod:`adanet.policies`: exit policies and the protocol they follow.
* :mod:`adanet.calibration`: calibrating policies (shares, cost, risk, temperatures) and the
  budgeted sweep.
* :mod:`adanet.costs`: what each exit costs in MACs and parameters.
* :mod:`adanet.inference`: early exit and the static baselines.
* :mod:`adanet.measure`: wall time and accuracy.
* :mod:`adanet.deploy`: optimized copies, model directories, ``torch.export``, ONNX, int8.
* :mod:`adanet.training`, :mod:`adanet.data`, :mod:`adanet.compat` (the original
  implementations' files) and :mod:`adanet.cli` (the ``adanet`` command).
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from adanet.calibration.budgeted import budgeted_sweep
from adanet.calibration.shares import calibrate_shares, geometric_exit_fractions
from adanet.costs.counting import measure_exit_costs
from adanet.deploy.model_dir import load_pretrained, save_pretrained
from adanet.deploy.onnx.exporter import export_onnx
from adanet.deploy.optimize import optimize_for_inference
from adanet.inference.engine import EarlyExitResult, early_exit, run_to_exit
from adanet.measure.evaluation import evaluate_anytime, evaluate_policy
from adanet.measure.latency import measure_exit_latency
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from adanet.models.ranet import RANet
from adanet.models.ranet_config import RANetConfig
from adanet.models.registry import create_model, list_models
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.protocol import ExitDecider
from adanet.policies.threshold import EarlyExitPolicy

try:
    __version__ = version("adanet-torch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "EarlyExitNetwork",
    "EarlyExitPolicy",
    "EarlyExitResult",
    "ExitDecider",
    "MSDNet",
    "MSDNetConfig",
    "PatienceExitPolicy",
    "RANet",
    "RANetConfig",
    "__version__",
    "budgeted_sweep",
    "calibrate_shares",
    "create_model",
    "early_exit",
    "evaluate_anytime",
    "evaluate_policy",
    "export_onnx",
    "geometric_exit_fractions",
    "list_models",
    "load_pretrained",
    "measure_exit_costs",
    "measure_exit_latency",
    "optimize_for_inference",
    "run_to_exit",
    "save_pretrained",
]

# The subpackages, reachable as attributes (``adanet.calibration.calibrate_risk``) without an
# import of their own; each is loaded on first access.
_SUBPACKAGES = frozenset(
    (
        "blocks",
        "calibration",
        "cli",
        "compat",
        "costs",
        "data",
        "deploy",
        "inference",
        "measure",
        "models",
        "policies",
        "training",
    )
)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"adanet.{name}")
    raise AttributeError(f"module 'adanet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBPACKAGES})
