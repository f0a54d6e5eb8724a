"""``quantize_onnx``: post-training static int8 quantization of exported early-exit stages.

Takes a directory written by :func:`adanet.export_onnx` and writes the same layout (stage files
of the same names, inputs and outputs, ``manifest.json``, ``early_exit_session.py``) with every
stage quantized by ONNX Runtime's static quantizer, so :class:`adanet.deploy.onnx.EarlyExitSession`
(or the copied ``early_exit_session.py``) and :class:`adanet.deploy.onnx.OnnxRuntimeNetwork` run it
unchanged.

How each stage is quantized:

* **Calibration.** The float stages run on the calibration images, exit by exit, so stage
  ``k`` is calibrated on exactly the state tensors it receives in deployment; ranges are the
  min-max of every activation over all calibration images.
* **Format.** QDQ (QuantizeLinear/DequantizeLinear pairs around each quantizable operator),
  which ONNX Runtime fuses into integer kernels (``QLinearConv``, ...) when it loads the file.
* **Weights** int8, per output channel. **Activations** uint8 (asymmetric) by default: ONNX
  Runtime's x86 integer kernels multiply uint8 activations by int8 weights.
* **Reduced range** (7-bit weights) by default: on x86 CPUs without VNNI (AVX2, AVX-512F)
  those kernels add pairs of uint8 x int8 products in int16, which saturates with full-range
  weights. Measured on the digits model on an AVX2 CPU, the exits agreed with the float
  model's top-1 on 72-87% of random inputs with full-range weights and on 95-99% with 7-bit
  weights. The files are meant to be copied to other machines, so they stay safe on all.

Needs the ``onnx`` extra (onnx and onnxruntime), imported when called.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from adanet.deploy.onnx.quantized_state import pass_state_quantized
from adanet.models.walk import ExitWalk

__all__ = ["calibration_images", "quantize_onnx"]

_HINT = "pip install 'adanet-torch[onnx]'"
_ACTIVATIONS = ("uint8", "int8")

Activations = Literal["uint8", "int8"]


def calibration_images(
    batches: Any, channels: int, image_size: tuple[int, int] | None = None
) -> list[Tensor]:
    """Check calibration batches and return them as float32 CPU tensors.

    Args:
        batches: An iterable of ``[N, C, H, W]`` floating-point image tensors.
        channels: The channels every batch must have.
        image_size: ``(H, W)`` every batch must have; the first batch's when omitted.

    Returns:
        The batches, float32, contiguous, on the CPU.

    Raises:
        TypeError: ``batches`` is not iterable (or is a single tensor), or an item is not a
            floating-point tensor.
        ValueError: No images, a batch of another rank, channel count or image size, or one
            holding NaN or infinite values (the quantizer's ranges would be meaningless).
    """
    if isinstance(batches, Tensor):
        raise TypeError(
            "calibration_batches must be an iterable of [N, C, H, W] tensors, got a single "
            f"tensor of shape {tuple(batches.shape)}; pass e.g. images.split(64) or [images]"
        )
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            "calibration_batches must be an iterable of [N, C, H, W] image tensors, got "
            f"{type(batches).__name__}"
        )
    out: list[Tensor] = []
    size = image_size
    for i, batch in enumerate(batches):
        if not isinstance(batch, Tensor):
            raise TypeError(
                f"calibration batch {i} is a {type(batch).__name__}, not a tensor of images "
                "(from a DataLoader of (images, labels), pass (x for x, _ in loader))"
            )
        if not torch.is_floating_point(batch):
            raise TypeError(
                f"calibration batch {i} has dtype {batch.dtype}; expected floating-point images "
                "normalised as in training"
            )
        if batch.dim() != 4 or batch.shape[1] != channels:
            raise ValueError(
                f"calibration batch {i} has shape {tuple(batch.shape)}; expected "
                f"[N, {channels}, H, W]"
            )
        here = (int(batch.shape[2]), int(batch.shape[3]))
        if size is None:
            size = here
        elif here != size:
            raise ValueError(
                f"calibration batch {i} has images of {here[0]}x{here[1]}, the others "
                f"{size[0]}x{size[1]}: every batch must have the size the model will see"
            )
        if batch.shape[0]:
            images = batch.detach().to("cpu", torch.float32).contiguous()
            if not bool(torch.isfinite(images).all()):
                raise ValueError(
                    f"calibration batch {i} holds NaN or infinite values; int8 ranges are "
                    "calibrated from the images' values, so every value must be finite"
                )
            out.append(images)
    if not out:
        raise ValueError("calibration_batches holds no images; pass a few hundred training images")
    return out


def _require_quantization() -> Any:
    try:
        import onnx  # noqa: F401 - the quantizer builds on it
        from onnxruntime import quantization
    except ImportError as error:
        raise ImportError(
            f"int8 quantization needs the 'onnx' extra ({error.name} is missing): {_HINT}"
        ) from None
    return quantization


class _PreprocessingHint(logging.Filter):
    """Drops the quantizer's advice to run its shape pre-processing: the exported stages have
    static shapes but the batch, and quantize fine without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _collect_feeds(
    directory: Path, images: list[Tensor], threads: int | None
) -> list[list[dict[str, Any]]]:
    """For each stage, the inputs it receives when the float stages run on ``images``."""
    from adanet.deploy.onnx.runtime_network import OnnxRuntimeNetwork

    network = OnnxRuntimeNetwork(directory, threads=threads)
    feeds: list[list[dict[str, Any]]] = [[] for _ in range(network.num_exits)]
    for batch in images:
        network.check_input(batch)
        walk = ExitWalk(network, batch)
        while not walk.done:
            feeds[walk.next_exit].append(network.stage_feeds(walk.state, walk.next_exit))
            walk.advance()
    return feeds


def quantize_onnx(
    directory: str | os.PathLike[str],
    to_directory: str | os.PathLike[str],
    calibration_batches: Iterable[Tensor],
    *,
    activations: Activations = "uint8",
    reduce_range: bool = True,
    uint8_state: bool = True,
    threads: int | None = None,
) -> Path:
    """Write an int8 copy of the ONNX stages in ``directory`` to ``to_directory``.

    Args:
        directory: A directory written by :func:`adanet.export_onnx`.
        to_directory: Where to write the quantized stages, ``manifest.json`` (with a
            ``quantization`` entry) and ``early_exit_session.py``; created if missing.
        calibration_batches: ``[N, C, H, W]`` float image tensors, normalised as in training,
            of the exported size: a few hundred training images in all.
        activations: ``"uint8"`` (fastest with ONNX Runtime's x86 kernels) or ``"int8"``.
        reduce_range: Quantize weights to 7 bits (see the module docs); keep it on unless every
            target CPU has VNNI.
        uint8_state: Pass state tensors between stages as uint8 where both stages agree on
            their quantization
            (:func:`adanet.deploy.onnx.quantized_state.pass_state_quantized`), which saves
            dequantizing and quantizing them again and copies a quarter of the bytes when the
            state is compacted. Their ``dtype`` in ``manifest.json`` then says ``uint8``. Only with
            ``"uint8"`` activations.
        threads: Intra-op threads of the calibration sessions.

    Returns:
        ``to_directory``.

    Raises:
        ImportError: Without the ``onnx`` extra.
        FileNotFoundError: No manifest in ``directory``.
        TypeError, ValueError: Bad calibration batches (see :func:`calibration_images`), an
            unknown ``activations``, or ``to_directory`` equal to ``directory``.
    """

    from adanet.deploy.onnx.export_format import read_export
    from adanet.deploy.onnx.exporter import write_export

    source, target = Path(directory), Path(to_directory)
    if activations not in _ACTIVATIONS:
        raise ValueError(f"activations must be one of {_ACTIVATIONS}, got {activations!r}")
    if not source.is_dir():
        raise FileNotFoundError(f"no export folder at {str(source)!r}")
    if os.path.realpath(target) == os.path.realpath(source):
        raise ValueError(f"to_directory must differ from directory, got {str(target)!r} for both")
    manifest, stage_bytes = read_export(source)
    shape = [int(v) for v in manifest["input"]["shape"][1:]]
    images = calibration_images(calibration_batches, shape[0], (shape[1], shape[2]))
    _require_quantization()
    import onnx

    feeds = _collect_feeds(source, images, threads)
    protos = _quantize_stages(stage_bytes, feeds, activations, reduce_range)
    passed = pass_state_quantized(protos) if uint8_state and activations == "uint8" else []
    for k, names in enumerate(passed):
        for entry in manifest["state"][k]:
            if entry["name"] in names:
                entry["dtype"] = "uint8"
    for proto in protos:
        onnx.checker.check_model(proto)
    manifest["quantization"] = {
        "method": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "weights": "int8, per channel",
        "activations": activations,
        "reduce_range": reduce_range,
        "uint8_state": [list(names) for names in passed],
        "calibration_images": sum(int(batch.shape[0]) for batch in images),
    }
    return write_export(target, manifest, [proto.SerializeToString() for proto in protos])


def _quantize_stages(
    stage_bytes: list[bytes],
    feeds: list[list[dict[str, Any]]],
    activations: Activations,
    reduce_range: bool,
) -> list[Any]:
    """Every float stage quantized by ONNX Runtime's static quantizer, calibrated on the inputs
    it receives (``feeds``); returns the int8 ModelProtos."""
    quantization = _require_quantization()
    import onnx

    qtype = quantization.QuantType
    hint = _PreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        with tempfile.TemporaryDirectory(prefix="adanet-int8-") as scratch:
            protos = []
            for k, payload in enumerate(stage_bytes):
                # Quantized from the checked bytes, not from the folder, which could change.
                float_path, int8_path = Path(scratch) / f"{k}.onnx", Path(scratch) / f"{k}.q.onnx"
                float_path.write_bytes(payload)
                quantization.quantize_static(
                    str(float_path),
                    str(int8_path),
                    _calibration_reader(iter(feeds[k]), quantization.CalibrationDataReader),
                    quant_format=quantization.QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=reduce_range,
                    activation_type=qtype.QUInt8 if activations == "uint8" else qtype.QInt8,
                    weight_type=qtype.QInt8,
                    calibrate_method=quantization.CalibrationMethod.MinMax,
                )
                protos.append(onnx.load(str(int8_path)))
    finally:
        logging.getLogger().removeFilter(hint)
    return protos


def _calibration_reader(items: Iterator[dict[str, Any]], base: type) -> Any:
    """A ``CalibrationDataReader`` over ``items`` (the class is built here: onnxruntime is
    imported only when quantizing)."""

    class Reader(base):  # type: ignore[misc]
        def get_next(self) -> dict[str, Any] | None:
            return next(items, None)

    return Reader()
