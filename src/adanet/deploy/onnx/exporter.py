"""``export_onnx``: one ONNX file per exit stage, a manifest, and a torch-free runner beside them.

The stages are those of :func:`adanet.export_stages` (one :class:`torch.export.ExportedProgram`
per exit), converted with ``torch.onnx.export(..., dynamo=True)``: the TorchDynamo-based
exporter takes the exported programs as they are, keeps their dynamic batch dimension, and is
the exporter PyTorch maintains. The policy, the state compaction and the bookkeeping of which
sample left where stay on the host, in ``early_exit_session.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from adanet._atomic import write_bytes_atomic
from adanet.costs.counting import measure_exit_costs
from adanet.deploy.model_dir import _as_preprocessing
from adanet.deploy.stages import StageExportError, _stage_error, export_stages, state_signature
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["MANIFEST_FORMAT_VERSION", "export_onnx"]

MANIFEST_FORMAT_VERSION = 1
"""Version of ``manifest.json``'s layout."""

_ONNX_HINT = "pip install 'adanet-torch[onnx]'"
_SESSION_FILE = "early_exit_session.py"
_BATCH = "batch"


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401 - torch's ONNX exporter builds on these two
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"export_onnx needs the 'onnx' extra ({error.name} is missing): {_ONNX_HINT}"
        ) from None


def _shape(model: EarlyExitNetwork, input_size: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(input_size, int):
        return (model.in_channels, input_size, input_size)
    size = tuple(int(v) for v in input_size)
    if len(size) == 2:
        return (model.in_channels, size[0], size[1])
    if len(size) == 3:
        return (size[0], size[1], size[2])
    raise ValueError(f"input_size must be S, (H, W) or (C, H, W), got {input_size!r}")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _name_batch_dimension(proto: Any) -> None:
    """Call the dynamic first dimension of every graph input and output ``batch``."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = _BATCH


def export_onnx(
    model: EarlyExitNetwork,
    directory: str | os.PathLike[str],
    input_size: int | Sequence[int],
    policy: EarlyExitPolicy | None = None,
    *,
    preprocessing: PretrainedCfg | Mapping[str, Any] | None = None,
    latency_ms: Sequence[float] | None = None,
    opset: int | None = None,
) -> Path:
    """Write ``model`` as one ONNX file per exit, ``manifest.json`` and ``early_exit_session.py``.

    ``stage_k.onnx`` takes ``images`` (stage 0) or the state tensors ``state_{k-1}_{i}`` and
    returns ``logits`` and ``state_{k}_{i}`` (the last stage only ``logits``); the first
    dimension of each is the dynamic ``batch``. ``manifest.json`` holds, besides those names and
    the per-sample shapes and dtypes of every state tensor: the exits with their files, the
    cumulative MACs of each exit for one image of ``input_size`` (and ``latency_ms`` when
    given), the preprocessing and the policy (as :meth:`EarlyExitPolicy.to_dict` writes it).
    Run it with :class:`adanet.deploy.onnx.EarlyExitSession` or the copied
    ``early_exit_session.py``.

    Args:
        model: A network following adanet's early-exit protocol, in eval mode.
        directory: Where to write; created if missing.
        input_size: ``S``, ``(H, W)`` or ``(C, H, W)`` of the images the files will take.
        policy: The policy the session applies; defaults to ``model.pretrained.policy`` for a
            model from :func:`adanet.load_pretrained`. Without one, a session needs a policy
            argument.
        preprocessing: Mean and std (and input size) of the images; defaults as ``policy``.
        latency_ms: Measured cumulative latency of each exit, recorded as given.
        opset: ONNX opset; the exporter's default when omitted.

    Returns:
        The directory.

    Raises:
        ImportError: Without the ``onnx`` extra.
        TypeError: ``model`` does not follow the protocol.
        RuntimeError: The model is in train mode.
        ValueError: A policy or ``latency_ms`` that does not fit the model, bad sizes.
        StageExportError: A stage could not be exported; names the stage and the operator.
    """
    _require_onnx()
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"export_onnx needs an adanet.EarlyExitNetwork, got {type(model).__name__}")
    shape = _shape(model, input_size)
    previous = getattr(model, "pretrained", None)
    if policy is None and previous is not None:
        policy = previous.policy
    prep = _as_preprocessing(preprocessing)
    if prep is None and previous is not None:
        prep = previous.preprocessing
    if policy is not None and policy.num_exits != model.num_exits:
        raise ValueError(
            f"the policy has {policy.num_exits} thresholds but the model has {model.num_exits} "
            "exits"
        )
    if latency_ms is not None:
        latency = [float(v) for v in latency_ms]
        if len(latency) != model.num_exits:
            raise ValueError(
                f"latency_ms has {len(latency)} entries but the model has {model.num_exits} exits"
            )
    example = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    programs = export_stages(model, example)
    signature = state_signature(model, example)
    costs = [float(c.macs) for c in measure_exit_costs(model, shape)]

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    exits: list[dict[str, Any]] = []
    states: list[list[dict[str, Any]]] = []
    num_classes: int | None = None
    for k, program in enumerate(programs):
        inputs = (
            ["images"] if k == 0 else [f"state_{k - 1}_{i}" for i in range(len(signature[k - 1]))]
        )
        outputs = ["logits"]
        if k < len(programs) - 1:
            outputs += [f"state_{k}_{i}" for i in range(len(signature[k]))]
            states.append(
                [
                    {"name": name, "shape": [_BATCH, *shape_k], "dtype": _dtype_name(dtype)}
                    for name, (shape_k, dtype) in zip(outputs[1:], signature[k], strict=True)
                ]
            )
        file = f"stage_{k}.onnx"
        kwargs: dict[str, Any] = {"dynamo": True, "input_names": inputs, "output_names": outputs}
        if opset is not None:
            kwargs["opset_version"] = opset
        try:
            # The exporter reports its progress on stdout; a library call stays quiet.
            with contextlib.redirect_stdout(io.StringIO()):
                onnx_program = torch.onnx.export(program, (), verbose=False, **kwargs)
        except StageExportError:
            raise
        except Exception as error:
            raise _stage_error(k, error) from error
        if onnx_program is None:  # pragma: no cover - dynamo=True always returns a program
            raise StageExportError(k, None, "the ONNX exporter returned nothing")
        proto = onnx_program.model_proto
        _name_batch_dimension(proto)
        write_bytes_atomic(target / file, proto.SerializeToString())
        if num_classes is None:
            num_classes = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
        entry: dict[str, Any] = {
            "index": k,
            "file": file,
            "inputs": inputs,
            "outputs": outputs,
            "macs": costs[k],
        }
        if latency_ms is not None:
            entry["latency_ms"] = latency[k]
        exits.append(entry)

    from adanet import __version__

    manifest: dict[str, Any] = {
        "format": "adanet-onnx",
        "format_version": MANIFEST_FORMAT_VERSION,
        "adanet_version": __version__,
        "num_exits": model.num_exits,
        "num_classes": num_classes,
        "input": {"name": "images", "shape": [_BATCH, *shape], "dtype": "float32"},
        "exits": exits,
        "state": states,
        "costs": {
            "convention": "actual",
            "input_size": list(shape),
            "macs": costs,
            "latency_ms": latency if latency_ms is not None else None,
        },
        "preprocessing": {
            "mean": list(prep.mean) if prep is not None else None,
            "std": list(prep.std) if prep is not None else None,
            "input_size": list(shape),
        },
        "policy": policy.to_dict() if policy is not None else None,
        "session": _SESSION_FILE,
    }
    write_bytes_atomic(
        target / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    )
    # Copied verbatim: the runner a torch-free device imports.
    write_bytes_atomic(target / _SESSION_FILE, Path(__file__).with_name(_SESSION_FILE).read_bytes())
    return target
