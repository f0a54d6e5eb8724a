"""Taking a trained network to production.

* :func:`optimize_for_inference` / :func:`compile_for_early_exit`: an equivalent, faster copy
  for evaluation.
* :func:`save_pretrained` / :func:`load_pretrained`: a self-contained, checksummed model
  directory (config, weights, policy, preprocessing), with no pickle.
* :func:`export_stages`: one ``torch.export`` program per exit stage.
* :func:`export_onnx` (:mod:`adanet.deploy.onnx`): one ONNX file per stage and a torch-free
  ONNX Runtime runner; :func:`quantize_for_inference` an int8 copy for the CPU.
"""

from adanet.deploy.int8 import quantize_for_inference
from adanet.deploy.model_dir import (
    PretrainedError,
    PretrainedInfo,
    load_pretrained,
    save_pretrained,
)
from adanet.deploy.onnx import export_onnx
from adanet.deploy.optimize import compile_for_early_exit, optimize_for_inference
from adanet.deploy.stages import export_stages

__all__ = [
    "PretrainedError",
    "PretrainedInfo",
    "compile_for_early_exit",
    "export_onnx",
    "export_stages",
    "load_pretrained",
    "optimize_for_inference",
    "quantize_for_inference",
    "save_pretrained",
]
