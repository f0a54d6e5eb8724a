"""``quantize_for_inference``: an int8 copy of an early-exit network for the CPU.

Post-training static quantization of every stage, through ONNX Runtime: the network is
exported as one ONNX graph per exit (:func:`adanet.export_onnx`), each graph is quantized to
int8 (QDQ, int8 per-channel weights, uint8 activations) with ranges calibrated on a few hundred
training images run through the float stages (:func:`adanet.deploy.onnx.quantize_onnx`), and the
int8 stages are loaded into ONNX Runtime sessions behind adanet's early-exit protocol
(:class:`adanet.deploy.onnx.OnnxRuntimeNetwork`), so :func:`adanet.early_exit` runs them with real
batched early exit.

Why ONNX Runtime rather than PyTorch's own int8 path: ``torch.ao.quantization.quantize_pt2e``
is gone from recent torch (2.14 here); its successor lives in the separate torchao package,
whose int8 convolutions run through ``torch.compile`` (Inductor), one compilation per stage and
batch-size bucket, a real cost on a small CPU (not measured here). ONNX Runtime quantizes a
stage in seconds and needs no compilation; its sessions also carry far less per-operator
overhead than eager PyTorch, which dominates for the small convolutions of early-exit networks
(figures in ``docs/benchmarks.md``). The stages are the very files
:func:`adanet.export_onnx` writes, so the int8 model also ships to a device without PyTorch
(``adanet export --int8``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from adanet.costs.counting import measure_exit_costs
from adanet.deploy.onnx.quantize import Activations, calibration_images
from adanet.models.early_exit_network import EarlyExitNetwork

if TYPE_CHECKING:
    from adanet.deploy.onnx.runtime_network import OnnxRuntimeNetwork

__all__ = ["quantize_for_inference"]


def quantize_for_inference(
    model: EarlyExitNetwork,
    calibration_batches: Iterable[Tensor],
    *,
    directory: str | os.PathLike[str] | None = None,
    activations: Activations = "uint8",
    reduce_range: bool = True,
    threads: int | None = None,
) -> OnnxRuntimeNetwork:
    """Quantize every stage of ``model`` to int8 and return it as an early-exit network.

    The result is an :class:`adanet.deploy.onnx.OnnxRuntimeNetwork`: an
    :class:`~adanet.EarlyExitNetwork` whose ``begin``/``advance`` run one ONNX Runtime session
    of an int8 stage per exit (its heads are identities, each stage ending in its own head),
    so ``adanet.early_exit(int8_model, x, policy)`` does real batched early exit with the
    state compacted between exits, and ``int8_model(x)`` gives every exit's logits. It takes
    float32 CPU images of the calibration images' size, normalised as in training, and charges
    each exit the float model's MACs.

    Args:
        model: A network following adanet's early-exit protocol (RANet, MSDNet or your own),
            in eval mode. It is not modified.
        calibration_batches: An iterable of ``[N, C, H, W]`` float image tensors of the size
            the quantized model will take, normalised as in training: a few hundred training
            images in all (for a DataLoader of pairs, ``(x for x, _ in loader)``).
        directory: Keep the int8 stages, ``manifest.json`` and ``early_exit_session.py`` here
            (what :class:`adanet.deploy.onnx.EarlyExitSession` runs); a temporary directory, removed
            once the sessions are loaded, when omitted.
        activations: ``"uint8"`` (default, fastest on x86) or ``"int8"`` activations.
        reduce_range: 7-bit weights, safe on x86 CPUs without VNNI
            (see :mod:`adanet.deploy.onnx.quantize`).
        threads: Intra-op threads of the sessions; ``torch.get_num_threads()`` by default.

    Returns:
        The int8 network.

    Raises:
        ImportError: Without the ``onnx`` extra.
        TypeError: ``model`` is not an EarlyExitNetwork; ``calibration_batches`` is not an
            iterable of floating-point tensors.
        ValueError: No calibration images, or batches of the wrong rank, channel count or of
            different image sizes.
        RuntimeError: The model is in train mode.
        StageExportError: A stage could not be exported to ONNX.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"quantize_for_inference needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    if model.training:
        raise RuntimeError(
            "quantize_for_inference needs the model in eval mode (call model.eval()): the int8 "
            "stages use BatchNorm's running statistics"
        )
    # Checked before the (slow) export, so a bad argument fails at once.
    images = calibration_images(calibration_batches, model.in_channels)
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    probe = images[0][:1]
    model.check_input(probe if weight is None else probe.to(weight.device, weight.dtype))
    shape = tuple(int(v) for v in images[0].shape[1:])

    from adanet.deploy.onnx.exporter import export_onnx
    from adanet.deploy.onnx.quantize import _require_quantization, quantize_onnx
    from adanet.deploy.onnx.runtime_network import OnnxRuntimeNetwork

    _require_quantization()
    with tempfile.TemporaryDirectory(prefix="adanet-int8-") as scratch:
        fp32 = Path(scratch) / "fp32"
        export_onnx(model, fp32, shape)
        target = Path(directory) if directory is not None else Path(scratch) / "int8"
        quantize_onnx(
            fp32,
            target,
            images,
            activations=activations,
            reduce_range=reduce_range,
            threads=threads,
        )
        network = OnnxRuntimeNetwork(target, threads=threads)
    network.register_costs(
        "reference", [c.macs for c in measure_exit_costs(model, shape, convention="reference")]
    )
    return network
