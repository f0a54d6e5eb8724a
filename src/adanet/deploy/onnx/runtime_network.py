"""``OnnxRuntimeNetwork``: the ONNX stages of an exported network as an :class:`EarlyExitNetwork`.

A directory written by :func:`adanet.export_onnx` (or quantized by
:func:`adanet.deploy.onnx.quantize_onnx`) holds one ONNX file per exit: stage ``k`` takes the flat
state tensors stage ``k - 1`` returned and gives exit ``k``'s logits and the state after it.
This module loads every stage into an ONNX Runtime session and puts them behind adanet's
early-exit protocol, so :func:`adanet.early_exit`, ``forward`` and the evaluation helpers drive
them exactly as they drive the eager network:

* :meth:`~OnnxRuntimeNetwork.begin` makes the state ``[images]``;
* :meth:`~OnnxRuntimeNetwork.advance` runs stage ``k`` on the state and returns its logits as
  the "feature map" and its state tensors (as torch tensors sharing ONNX Runtime's buffers);
* every exit head is ``nn.Identity``: each stage computes its own head, inside its graph.

Between exits :func:`adanet.early_exit` compacts the state (a flat list of batch-first
tensors) to the samples that remain, so the next session runs on those only.

It needs onnxruntime (the ``onnx`` extra), imported when a network is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adanet.deploy.stage_network import StageNetwork

__all__ = ["OnnxRuntimeNetwork"]

_HINT = "pip install 'adanet-torch[onnx]'"


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            f"OnnxRuntimeNetwork needs onnxruntime (the 'onnx' extra): {_HINT}"
        ) from None
    return onnxruntime


def session_options(threads: int | None, spin: bool) -> Any:
    """ONNX Runtime session options: ``threads`` intra-op threads (torch's count by default),
    one inter-op thread, and idle threads that sleep unless ``spin``.

    Spinning threads fight the working ones on a busy machine, where sessions that spin ran
    several times slower than sessions that sleep (``docs/benchmarks.md``).
    """
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads) if threads is not None else torch.get_num_threads()
    options.inter_op_num_threads = 1
    value = "1" if spin else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", value)
    options.add_session_config_entry("session.inter_op.allow_spinning", value)
    return options


class OnnxRuntimeNetwork(StageNetwork):
    """An exported early-exit network whose stages run in ONNX Runtime (fp32 or int8).

    An :class:`~adanet.EarlyExitNetwork` without parameters: its state is the flat list of
    state tensors of the exported stages, :meth:`advance` runs one ONNX Runtime session per
    exit, and its heads are identities (each stage's graph ends in its own head). So
    :func:`adanet.early_exit` runs it with real batched early exit, compacting the state
    between exits, and ``model(x)`` gives every exit's logits. Inputs must be float32 CPU
    images of exactly the exported ``(C, H, W)``.

    Costs: :func:`adanet.early_exit` charges each exit the MACs of the original float network
    recorded in the manifest (what the sample's computation is, whatever its number format);
    :func:`adanet.measure_exit_costs` cannot see inside ONNX Runtime and counts nothing.

    Args:
        directory: A directory written by :func:`adanet.export_onnx` or
            :func:`adanet.deploy.onnx.quantize_onnx`.
        threads: Intra-op threads of each session; ``torch.get_num_threads()`` by default.
        spin: Let idle ONNX Runtime threads spin (faster on an idle machine, much slower on a
            busy one).

    The folder is checked first, by the same code the copied runner uses
    (:func:`adanet.deploy.onnx.export_format.read_export`): every file against
    ``checksums.json``, read once by a plain name and never through a symbolic link, the
    manifest field by field, and each stage's graph against the manifest.

    Raises:
        ImportError: Without onnxruntime.
        FileNotFoundError: No folder, or a file it lists is missing.
        ExportError: An altered, linked or foreign file, a malformed manifest, or a stage that
            does not match it (a ``ValueError``).

    Attributes:
        directory: Where the stages were loaded from (the files may be gone: the sessions hold
            the graphs).
        manifest: The manifest's content.
        input_shape: ``(C, H, W)`` of the images the stages take.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, threads: int | None = None, spin: bool = False
    ) -> None:
        ort = _import_onnxruntime()
        from adanet.deploy.onnx.export_format import check_stage, read_export

        manifest, stages = read_export(directory)
        super().__init__(len(manifest["exits"]), manifest["input"]["shape"][1:])
        self.directory = Path(directory)
        self.manifest = manifest
        options = session_options(threads, spin)
        self._sessions: list[Any] = []
        self._feeds: list[list[tuple[int, str]]] = []
        self._outputs: list[list[str]] = []
        for k, (entry, payload) in enumerate(zip(manifest["exits"], stages, strict=True)):
            # Built from the checked bytes, not from the file, which could change meanwhile.
            session = ort.InferenceSession(
                payload, sess_options=options, providers=["CPUExecutionProvider"]
            )
            # A stage need not read every state tensor (ONNX drops unused inputs): feed only
            # the ones its graph takes, by their position in the state.
            taken = set(check_stage(session, k, manifest))
            self._feeds.append([(i, n) for i, n in enumerate(entry["inputs"]) if n in taken])
            self._outputs.append(list(entry["outputs"]))
            self._sessions.append(session)
        self.register_costs(manifest["costs"]["convention"], manifest["costs"]["macs"])

    def check_input(self, x: Any) -> None:
        """Raise a clear error unless ``x`` is a float32 CPU batch of the exported shape.

        Raises:
            TypeError: Not a float32 tensor.
            ValueError: Not on the CPU, or not ``[N, C, H, W]`` of the exported size.
        """
        super().check_input(x)
        assert isinstance(x, Tensor)  # the base check raises otherwise
        if x.dtype != torch.float32:
            raise TypeError(f"the ONNX stages take float32 images, got {x.dtype}")
        if x.device.type != "cpu":
            raise ValueError(f"the ONNX stages run on the CPU; the images are on {x.device}")

    def stage_feeds(self, state: Sequence[Tensor], exit_index: int) -> dict[str, Any]:
        """The numpy inputs of stage ``exit_index`` (by their graph names) from ``state``,
        leaving out the state tensors that stage does not read."""
        return {name: state[i].detach().contiguous().numpy() for i, name in self._feeds[exit_index]}

    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        """Run stage ``exit_index`` on the state; returns its logits and the state after it."""
        feeds = self.stage_feeds(state, exit_index)
        outputs = self._sessions[exit_index].run(self._outputs[exit_index], feeds)
        tensors = [torch.from_numpy(value) for value in outputs]
        return tensors[0], tensors[1:]

    def extra_repr(self) -> str:
        return (
            f"directory={str(self.directory)!r}, exits={self.num_exits}, "
            f"input_shape={self.input_shape}"
        )
