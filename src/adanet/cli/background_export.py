"""``BackgroundExport``: the report's ONNX export, made in a second process while the run is
evaluated.

Exporting a network's stages to ONNX (:func:`adanet.export_onnx`) is single-threaded Python
work of tens of seconds (about 50 s for the demo's six stages on a 2-core machine), and the
evaluation before the report keeps about one core busy. So :func:`adanet.cli.evaluate_run`
starts the export here, in a spawned process at the lowest scheduling priority, and the report
collects the folder when it times ONNX Runtime. Only built-in architectures are exported this
way (the child rebuilds the network from its config and weights; a network registered by the
user's own module would not be known there); for any other network, or when the background
export fails, the report exports in its own process as before.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from adanet.deploy.model_dir.record import build_record, rebuild
from adanet.models.early_exit_network import EarlyExitNetwork

__all__ = ["BackgroundExport"]


def _export_in_child(
    report: Connection,
    record: dict[str, Any],
    weights: bytes,
    image_shape: tuple[int, ...],
    target: str,
) -> None:
    """The child's work: rebuild the network, export it, and report ``None`` or the error."""
    try:
        # The parent is evaluating (its timings go into the report): take what it leaves.
        if hasattr(os, "nice"):
            os.nice(19)
        torch.set_num_threads(1)
        from adanet.deploy.onnx.exporter import export_onnx

        model = rebuild(record, "the report's model", meta=False)
        model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        export_onnx(model.eval(), target, image_shape)
    except BaseException as error:  # handed to the parent, which decides what to do
        report.send(f"{type(error).__name__}: {error}")
    else:
        report.send(None)
    finally:
        report.close()


class BackgroundExport:
    """An :func:`adanet.export_onnx` of ``model``'s stages running in a spawned process.

    Args:
        model: The network to export, on the CPU and in eval mode; its weights are copied
            now, so later changes to it are not exported.
        image_shape: ``(C, H, W)`` of the images the stages take.

    Raises:
        TypeError: ``model`` is not a built-in architecture the child process can rebuild
            (see the module docstring); export it in this process instead.
    """

    def __init__(self, model: EarlyExitNetwork, image_shape: Sequence[int]) -> None:
        record = build_record(model)
        if "model" in record:
            raise TypeError(
                f"{record['model']!r} is registered by the user's own module, which a spawned "
                "process would not import"
            )
        weights = io.BytesIO()
        torch.save(model.state_dict(), weights)
        self._folder = tempfile.TemporaryDirectory(prefix="adanet-report-onnx-")
        self.directory = Path(self._folder.name) / "stages"
        # Spawned, not forked: a forked child would inherit the parent's OpenMP thread pool
        # and any CUDA context, neither of which survives a fork.
        context = multiprocessing.get_context("spawn")
        self._answer, report = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_export_in_child,
            args=(
                report,
                record,
                weights.getvalue(),
                tuple(int(v) for v in image_shape),
                str(self.directory),
            ),
            daemon=True,  # never outlives the run that started it
        )
        self._process.start()
        report.close()

    def result(self) -> Path:
        """Wait for the export; the folder holding the stages.

        Raises:
            RuntimeError: The export failed in the child (its error is named) or the child
                ended without saying.
        """
        try:
            failure = self._answer.recv()
        except EOFError:
            self._process.join()
            failure = f"the export process ended with exit code {self._process.exitcode}"
        self._process.join()
        if failure is not None:
            raise RuntimeError(f"the background ONNX export failed: {failure}")
        return self.directory

    def close(self) -> None:
        """Stop the child if it still runs and remove the folder."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._answer.close()
        self._folder.cleanup()

    def __enter__(self) -> BackgroundExport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
