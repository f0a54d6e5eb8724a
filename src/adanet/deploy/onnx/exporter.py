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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from adanet._atomic import TEMPORARY_NAME, replace_directory, write_bytes_atomic
from adanet._validation import parse_input_size
from adanet.costs.counting import measure_exit_costs
from adanet.deploy.metadata import check_policy_for, check_preprocessing, finite_sequence
from adanet.deploy.model_dir.layout import checksum_document
from adanet.deploy.model_dir.save import as_preprocessing
from adanet.deploy.onnx.export_format import (
    CHECKSUMS,
    FORMAT,
    MANIFEST,
    SUPPORTED_FORMAT_VERSION,
    ExportError,
    check_manifest,
)
from adanet.deploy.stages import StageExportError, _stage_error, export_stages, state_signature
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "RUNNER_FILES",
    "check_replaceable_export",
    "export_onnx",
    "write_export",
]

MANIFEST_FORMAT_VERSION = SUPPORTED_FORMAT_VERSION
"""Version of ``manifest.json``'s layout (2: with ``checksums.json``)."""

#: The torch-free runner copied beside every export, and the format checks it imports.
RUNNER_FILES = ("early_exit_session.py", "export_format.py")
_ONNX_HINT = "pip install 'adanet-torch[onnx]'"
_BATCH = "batch"
_STAGE = re.compile(r"^stage_\d+\.onnx$")


def check_replaceable_export(directory: Path) -> None:
    """Refuse to replace a folder holding anything but an export's files (and adanet's own
    temporaries, and the ``__pycache__`` importing the runner leaves): replacing it would
    delete them.

    Raises:
        ExportError: Naming the other entries.
    """
    known = {MANIFEST, CHECKSUMS, "__pycache__", *RUNNER_FILES}
    others = sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.name not in known
        and not _STAGE.match(entry.name)
        and not TEMPORARY_NAME.match(entry.name)
    )
    if others:
        raise ExportError(
            f"{directory} holds {others[:5]} besides an ONNX export's files; exporting replaces "
            "the whole folder and would delete them: move them out or export elsewhere"
        )


def write_export(
    directory: str | os.PathLike[str], manifest: Mapping[str, Any], stages: Sequence[bytes]
) -> Path:
    """Write an export folder, all or nothing: the stages, the manifest (checked first by the
    runners' own :func:`~adanet.deploy.onnx.export_format.check_manifest`), the runner files
    and ``checksums.json`` over all of them, in a fresh folder swapped in whole.

    Raises:
        ExportError: A manifest the runners would refuse, or a folder holding other files.
    """
    check_manifest(json.loads(json.dumps(manifest)), "the manifest to write")
    here = Path(__file__).parent
    files = {
        entry["file"]: payload for entry, payload in zip(manifest["exits"], stages, strict=True)
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode("utf-8")
    for name in RUNNER_FILES:  # copied verbatim: the runner a torch-free device imports
        files[name] = (here / name).read_bytes()
    checksums = json.dumps(checksum_document(files), indent=2) + "\n"
    with replace_directory(directory, check_existing=check_replaceable_export) as fresh:
        for name, payload in files.items():
            write_bytes_atomic(fresh / name, payload)
        write_bytes_atomic(fresh / CHECKSUMS, checksums.encode("utf-8"))
    return Path(directory)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401 - torch's ONNX exporter builds on these two
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"export_onnx needs the 'onnx' extra ({error.name} is missing): {_ONNX_HINT}"
        ) from None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _name_batch_dimension(proto: Any) -> None:
    """Call the dynamic first dimension of every graph input and output ``batch``."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = _BATCH


def _checked_context(
    model: EarlyExitNetwork,
    shape: tuple[int, ...],
    policy: EarlyExitPolicy | PatienceExitPolicy | None,
    preprocessing: PretrainedCfg | Mapping[str, Any] | None,
    latency_ms: Sequence[float] | None,
) -> tuple[Any, PretrainedCfg | None, list[float] | None]:
    """The policy, preprocessing and latencies to record, each checked against the model."""
    previous = getattr(model, "pretrained", None)
    if policy is None and previous is not None:
        policy = previous.policy
    prep = as_preprocessing(preprocessing)
    if prep is None and previous is not None:
        prep = previous.preprocessing
    if prep is not None:
        prep = check_preprocessing(
            prep, channels=model.in_channels, where="preprocessing", error=ValueError
        )
        if prep.input_size != shape:
            raise ValueError(
                f"the preprocessing is for images of {list(prep.input_size)} but the export is "
                f"for {list(shape)}; pass preprocessing for the exported size"
            )
    if policy is not None:
        check_policy_for(model, policy, shape)
    latency = None
    if latency_ms is not None:
        latency = finite_sequence(latency_ms, model.num_exits, "latency_ms", ValueError)
    return policy, prep, latency


def _export_stage(
    program: Any, inputs: list[str], outputs: list[str], k: int, opset: int | None
) -> Any:
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
    return proto


def _export_stages_to_onnx(
    programs: Sequence[Any],
    signature: Sequence[Sequence[tuple[Sequence[int], torch.dtype]]],
    costs: list[float],
    latency: list[float] | None,
    opset: int | None,
) -> tuple[list[bytes], list[dict[str, Any]], list[list[dict[str, Any]]], int]:
    """Every stage as ONNX bytes, with the manifest's ``exits`` and ``state`` entries and the
    number of classes of the logits."""
    exits: list[dict[str, Any]] = []
    states: list[list[dict[str, Any]]] = []
    stages: list[bytes] = []
    num_classes = 0
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
        proto = _export_stage(program, inputs, outputs, k, opset)
        stages.append(proto.SerializeToString())
        entry: dict[str, Any] = {
            "index": k,
            "file": f"stage_{k}.onnx",
            "inputs": inputs,
            "outputs": outputs,
            "macs": costs[k],
        }
        if latency is not None:
            entry["latency_ms"] = latency[k]
        exits.append(entry)
        if k == 0:
            num_classes = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value)

    return stages, exits, states, num_classes


def export_onnx(
    model: EarlyExitNetwork,
    directory: str | os.PathLike[str],
    input_size: int | Sequence[int],
    policy: EarlyExitPolicy | PatienceExitPolicy | None = None,
    *,
    preprocessing: PretrainedCfg | Mapping[str, Any] | None = None,
    latency_ms: Sequence[float] | None = None,
    opset: int | None = None,
) -> Path:
    """Write ``model`` as one ONNX file per exit, ``manifest.json``, ``checksums.json`` and the
    torch-free runner (``early_exit_session.py`` with ``export_format.py``), all or nothing.

    ``stage_k.onnx`` takes ``images`` (stage 0) or the state tensors ``state_{k-1}_{i}`` and
    returns ``logits`` and ``state_{k}_{i}`` (the last stage only ``logits``); the first
    dimension of each is the dynamic ``batch``. ``manifest.json`` holds, besides those names and
    the per-sample shapes and dtypes of every state tensor: the exits with their files, the
    cumulative MACs of each exit for one image of ``input_size`` (and ``latency_ms`` when
    given), the preprocessing and the policy (as :meth:`EarlyExitPolicy.to_dict` writes it).
    ``checksums.json`` holds every other file's SHA-256, which the runners verify before
    running anything. Everything is checked and every file made in memory first; the files
    then go into a fresh folder that replaces ``directory`` in one swap, so a reader (or a
    crash) sees the whole old export or the whole new one. Run it with
    :class:`adanet.deploy.onnx.EarlyExitSession`, the copied ``early_exit_session.py`` or
    :class:`adanet.deploy.onnx.OnnxRuntimeNetwork`.

    Args:
        model: A network following adanet's early-exit protocol, in eval mode.
        directory: Where to write; created if missing. An existing folder is replaced whole,
            so it may hold only an export's files (anything else is refused, not deleted).
        input_size: ``S``, ``(H, W)`` or ``(C, H, W)`` of the images the files will take.
        policy: The policy the session applies; defaults to ``model.pretrained.policy`` for a
            model from :func:`adanet.load_pretrained`. It must fit the model: its exits, and
            the classes and input size it records. Without one, a session needs a policy
            argument.
        preprocessing: Mean and std (and input size, which must be the exported one) of the
            images; defaults as ``policy``.
        latency_ms: Measured cumulative latency of each exit (finite, non-negative,
            non-decreasing), recorded as given.
        opset: ONNX opset; the exporter's default when omitted.

    Returns:
        The directory.

    Raises:
        ImportError: Without the ``onnx`` extra.
        TypeError: ``model`` does not follow the protocol, or ``policy`` is not one of
            adanet's policies.
        RuntimeError: The model is in train mode.
        ValueError: A policy, preprocessing or ``latency_ms`` that does not fit the model, bad
            sizes, or (``ExportError``) a folder holding other files.
        StageExportError: A stage could not be exported; names the stage and the operator.
    """
    _require_onnx()
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"export_onnx needs an adanet.EarlyExitNetwork, got {type(model).__name__}")
    shape = parse_input_size(input_size, model.in_channels)
    policy, prep, latency = _checked_context(model, shape, policy, preprocessing, latency_ms)
    example = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    programs = export_stages(model, example)
    signature = state_signature(model, example)
    costs = [float(c.macs) for c in measure_exit_costs(model, shape)]

    stages, exits, states, num_classes = _export_stages_to_onnx(
        programs, signature, costs, latency, opset
    )
    from adanet import __version__

    manifest: dict[str, Any] = {
        "format": FORMAT,
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
            "latency_ms": latency,
        },
        "preprocessing": {
            "mean": list(prep.mean) if prep is not None else None,
            "std": list(prep.std) if prep is not None else None,
            "input_size": list(shape),
        },
        "policy": policy.to_dict() if policy is not None else None,
        "session": RUNNER_FILES[0],
    }
    return write_export(directory, manifest, stages)
