"""Early exit outside PyTorch: ONNX files per exit stage and an ONNX Runtime runner.

* :func:`export_onnx` writes one ``.onnx`` file per exit stage (dynamic batch), a
  ``manifest.json``, a copy of the runner (``early_exit_session.py`` with
  ``export_format.py``) and ``checksums.json`` over all of them, replacing the folder whole; it
  needs the ``onnx`` extra. Both runners check the folder first
  (:mod:`adanet.deploy.onnx.export_format`) and raise :class:`ExportError` on an altered,
  linked or malformed one.
* :func:`quantize_onnx` writes an int8 copy of such a directory (ONNX Runtime static
  quantization, calibrated on training images); :class:`OnnxRuntimeNetwork` loads either as
  an :class:`adanet.EarlyExitNetwork` that :func:`adanet.early_exit` drives.
* :class:`EarlyExitSession` runs such a directory with real batched early exit; it needs only
  numpy and onnxruntime, and is the very class of the copied ``early_exit_session.py``.

Importing this package imports neither onnx nor onnxruntime; each is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adanet.deploy.onnx.export_format import ExportError
from adanet.deploy.onnx.exporter import MANIFEST_FORMAT_VERSION, export_onnx
from adanet.deploy.onnx.quantize import quantize_onnx
from adanet.deploy.onnx.runtime_network import OnnxRuntimeNetwork

if TYPE_CHECKING:
    from adanet.deploy.onnx.early_exit_session import EarlyExitSession

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "EarlyExitSession",
    "ExportError",
    "OnnxRuntimeNetwork",
    "export_onnx",
    "quantize_onnx",
]


def __getattr__(name: str) -> Any:
    # The session module imports onnxruntime at its top (it must stand alone when copied), so
    # it is loaded only when asked for.
    if name == "EarlyExitSession":
        try:
            from adanet.deploy.onnx.early_exit_session import EarlyExitSession
        except ImportError as error:
            raise ImportError(
                f"adanet.deploy.onnx.EarlyExitSession needs numpy and onnxruntime ({error.name} is "
                "missing): pip install 'adanet-torch[onnx]'"
            ) from None
        return EarlyExitSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
