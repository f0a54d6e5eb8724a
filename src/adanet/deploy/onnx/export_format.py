"""The format of an ``adanet.export_onnx`` folder, and its checks; needs only the standard library.

Copied next to the exported files with ``early_exit_session.py``, which imports it, so that a
device without PyTorch (or adanet) checks a folder exactly as adanet does. Within adanet,
:class:`adanet.deploy.onnx.OnnxRuntimeNetwork`, :func:`adanet.export_onnx` and
:func:`adanet.deploy.onnx.quantize_onnx` run the very same checks:

* :func:`read_export`: every file is read once, by a plain name inside the folder and never
  through a symbolic link, and its SHA-256 compared with ``checksums.json``, so no stage of
  another export, and no file outside the folder, runs; the manifest is validated field by
  field (:func:`check_manifest`).
* :func:`check_stage`: a stage's graph takes and returns what the manifest describes.
* :func:`parse_policy`: accepts exactly the policy documents adanet's ``policy_from_dict``
  accepts (and ``check_policy_fits`` lets through).

What this cannot protect against: someone able to rewrite ``checksums.json`` as well.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CHECKSUMS",
    "FORMAT",
    "MANIFEST",
    "SUPPORTED_FORMAT_VERSION",
    "ExportError",
    "check_manifest",
    "check_stage",
    "parse_policy",
    "read_export",
]

MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"
FORMAT = "adanet-onnx"
SUPPORTED_FORMAT_VERSION = 2
MAX_JSON_BYTES = 16 * 2**20
MAX_STAGE_BYTES = 2**31  # protobuf's own limit on one ONNX file
MEASURES = ("max_prob", "entropy", "margin", "patience")
STATE_DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int32", "int64", "bool")
_ONNX_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)"}
_ONNX_TYPES.update({"float64": "tensor(double)", "bool": "tensor(bool)"})
_FLOAT_MAX_INT = int(1.7976931348623157e308)
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_INF = {"inf": math.inf, "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf}
_INF.update({"-inf": -math.inf, "-infinity": -math.inf})
_POLICY_KEYS: tuple[str, ...] = ("measure", "thresholds", "temperatures", "num_classes")
_POLICY_KEYS += ("cost_convention", "input_size")
_PATIENCE_KEYS = ("measure", "patience", "thresholds", "num_classes")


class ExportError(ValueError):
    """An export folder that is incomplete, altered, malformed or not adanet's."""


# ----------------------------------------------------------------------------- small checks


def _number(v: Any) -> bool:
    # A JSON integer beyond float's range is no usable number (float() would overflow).
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) <= _FLOAT_MAX_INT
    return isinstance(v, float)


def _int(v: Any, low: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _keys(value: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> Any:
    if not isinstance(value, Mapping):
        raise ExportError(f"{where} must be a JSON object, got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    unknown = sorted(str(k) for k in value if k not in required and k not in optional)
    if missing or unknown:
        raise ExportError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    return value


def _cumulative(values: Any, count: int, where: str) -> list[float]:
    if not isinstance(values, list | tuple) or not all(_number(v) for v in values):
        raise ExportError(f"{where} must be a list of numbers, got {values!r}")
    if len(values) != count:
        raise ExportError(f"{where} has {len(values)} entries but there are {count} exits")
    costs = [float(v) for v in values]
    if any(not math.isfinite(c) or c < 0 for c in costs):
        raise ExportError(f"{where} must be finite and non-negative, got {costs}")
    if any(b < a for a, b in itertools.pairwise(costs)):
        raise ExportError(f"{where} must be cumulative (non-decreasing), got {costs}")
    return costs


def _plain_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _PLAIN.match(name) or ".." in name or len(name) > 255:
        raise ExportError(f"{where}: {name!r} is not a plain file name inside the folder")
    return name


# ----------------------------------------------------------------------------- the policy


def _threshold(value: Any) -> float:
    if isinstance(value, str) and value.strip().lower() in _INF:
        return _INF[value.strip().lower()]
    if _number(value):
        return float(value)
    raise ValueError(f"cannot decode threshold {value!r}; expected a number, 'inf' or '-inf'")


def _size_hw(value: Any) -> tuple[int, int]:
    if _int(value):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) in (2, 3) and all(_int(v) for v in value):
        return (value[-2], value[-1])
    raise ValueError(f"input_size must be S, (H, W) or (C, H, W) of positive ints, got {value!r}")


def _patience(data: Mapping[str, Any]) -> dict[str, Any]:
    _ = _keys(data, "the patience policy", ("thresholds",), _PATIENCE_KEYS)
    raw = data["thresholds"]
    if not isinstance(raw, list | tuple) or not raw or not all(_number(t) for t in raw):
        raise ValueError(f"'thresholds' must be a non-empty list of numbers, got {raw!r}")
    k = data.get("patience", raw[0])
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if any(t != k for t in raw) or not _int(k):
        raise ValueError(f"patience must be an int >= 1 equal to every threshold, got {k!r}")
    return {"measure": "patience", "thresholds": [float(k)] * len(raw), "temperatures": None}


def _thresholds_policy(data: Mapping[str, Any]) -> dict[str, Any]:
    _ = _keys(data, "the policy", ("thresholds",), _POLICY_KEYS)
    raw, measure = data["thresholds"], data.get("measure", "max_prob")
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"'thresholds' must be a non-empty list, got {raw!r}")
    if measure not in MEASURES[:3]:
        raise ValueError(f"unknown confidence measure {measure!r}; allowed: {MEASURES}")
    thresholds = [_threshold(t) for t in raw]
    if any(math.isnan(t) for t in thresholds):
        raise ValueError(f"thresholds must not be NaN, got {raw!r}")
    temps = data.get("temperatures")
    if temps is not None:
        if not isinstance(temps, list | tuple) or not all(_number(t) for t in temps):
            raise ValueError(f"temperatures must be a list of numbers, got {temps!r}")
        if len(temps) != len(raw) or not all(math.isfinite(t) and t > 0 for t in temps):
            raise ValueError(f"temperatures must be {len(raw)} positive numbers, got {temps!r}")
        temps = [float(t) for t in temps]
    convention = data.get("cost_convention")
    if convention is not None and (not isinstance(convention, str) or not convention):
        raise ValueError(f"cost_convention must be a non-empty string, got {convention!r}")
    return {"measure": measure, "thresholds": thresholds, "temperatures": temps}


def parse_policy(
    data: Any,
    num_exits: int,
    num_classes: int | None = None,
    input_hw: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Check a policy document (``EarlyExitPolicy.to_dict`` or ``PatienceExitPolicy.to_dict``)
    for a network of ``num_exits`` exits, ``num_classes`` classes and ``input_hw`` images.

    Accepts exactly what adanet's ``policy_from_dict`` accepts and its ``check_policy_fits``
    lets through; unknown keys are refused, not dropped.

    Returns:
        ``{"measure", "thresholds" (floats), "temperatures" (floats or None)}``.

    Raises:
        ValueError: Naming the field.
    """
    if not isinstance(data, Mapping) or "thresholds" not in data:
        raise ValueError(f"a policy is a mapping with 'thresholds', got {data!r}")
    policy = _patience(data) if data.get("measure") == "patience" else _thresholds_policy(data)
    classes = data.get("num_classes")
    if classes is not None and not _int(classes):
        raise ValueError(f"num_classes must be None or an int >= 1, got {classes!r}")
    recorded_hw = None
    if data.get("measure") != "patience" and data.get("input_size") is not None:
        recorded_hw = _size_hw(data["input_size"])
    if len(policy["thresholds"]) != num_exits:
        raise ValueError(
            f"the policy decides for {len(policy['thresholds'])} exits but the model has "
            f"{num_exits}"
        )
    if classes is not None and num_classes is not None and classes != num_classes:
        raise ValueError(
            f"the policy was calibrated for {classes} classes, the model has {num_classes}"
        )
    if recorded_hw is not None and input_hw is not None and recorded_hw != tuple(input_hw[-2:]):
        raise ValueError(
            f"the policy was calibrated for input_size={recorded_hw}, the model takes "
            f"{tuple(input_hw[-2:])}"
        )
    return policy


# ----------------------------------------------------------------------------- the folder


def _existing(directory: str) -> str:
    # A replacement interrupted between its two renames (where the atomic exchange is not
    # available) leaves the old tree aside as ".<name>.<pid>-<random>.old": read that one.
    if os.path.isdir(directory):
        return directory
    parent, name = os.path.split(os.path.abspath(directory))
    aside = re.compile(rf"^\.{re.escape(name)}\.\d+-[a-z0-9_]{{8}}\.old$")
    found = [
        os.path.join(parent, e)
        for e in (os.listdir(parent) if os.path.isdir(parent) else [])
        if aside.match(e) and not os.path.islink(os.path.join(parent, e))
    ]
    return max(found, key=os.path.getmtime) if found else directory


def _read(directory: str, name: str, max_bytes: int) -> bytes:
    path = os.path.join(directory, _plain_name(name, directory))
    if os.path.islink(path):
        raise ExportError(f"{path} is a symbolic link; refusing to follow it out of the folder")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except OSError as error:
        raise ExportError(f"cannot open {path}: {error.strerror}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode) or status.st_size > max_bytes:
        os.close(descriptor)
        raise ExportError(f"{path} is not a regular file of at most {max_bytes} bytes")
    with os.fdopen(descriptor, "rb") as stream:
        payload = stream.read(max_bytes + 1)
    if len(payload) > max_bytes:
        raise ExportError(f"{path} grew past {max_bytes} bytes while being read")
    return payload


def _json(payload: bytes, where: str) -> Any:
    def refuse(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a key given twice in {keys}")
        return dict(pairs)

    def constant(name: str) -> Any:
        raise ValueError(f"the non-standard constant {name}")

    try:
        return json.loads(
            payload.decode("utf-8"), object_pairs_hook=refuse, parse_constant=constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ExportError(f"{where} is not valid JSON: {error}") from None


class _Verified:
    """The folder's ``checksums.json``; :meth:`read` returns a file's bytes once checked."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        where = os.path.join(directory, CHECKSUMS)
        try:
            payload = _read(directory, CHECKSUMS, MAX_JSON_BYTES)
        except FileNotFoundError:
            if not os.path.lexists(os.path.join(directory, MANIFEST)):
                raise FileNotFoundError(f"no {MANIFEST} in {directory!r}: not an export") from None
            raise ExportError(
                f"{directory} has no {CHECKSUMS}: written by an older adanet, or not by adanet; "
                "export it again"
            ) from None
        record = _keys(_json(payload, where), where, ("format_version", "algorithm", "files"))
        if record["format_version"] != 1 or record["algorithm"] != "sha256":
            raise ExportError(f"{where}: expected format_version 1 and algorithm 'sha256'")
        files = record["files"]
        if not isinstance(files, Mapping) or not all(
            isinstance(v, str) and _HEX.match(v) for v in files.values()
        ):
            raise ExportError(f"{where}: 'files' must map file names to SHA-256 digests")
        self.files = {_plain_name(k, where): str(v) for k, v in files.items()}

    def read(self, name: str, max_bytes: int) -> bytes:
        if name not in self.files:
            raise ExportError(f"{os.path.join(self.directory, CHECKSUMS)} does not cover {name!r}")
        payload = _read(self.directory, name, max_bytes)
        if hashlib.sha256(payload).hexdigest() != self.files[name]:
            raise ExportError(
                f"{os.path.join(self.directory, name)} was altered or comes from another export: "
                "its SHA-256 differs from checksums.json; refusing to run it"
            )
        return payload


def _check_exits(m: Mapping[str, Any], where: str, n: int) -> None:
    exits, state = m["exits"], m["state"]
    if not isinstance(exits, list) or len(exits) != n:
        raise ExportError(f"{where}: exits must list {n} stages")
    if not isinstance(state, list) or len(state) != n - 1:
        raise ExportError(f"{where}: state must list {n - 1} stages' outputs")
    names: list[list[str]] = []
    for k, tensors in enumerate(state):
        if not isinstance(tensors, list):
            raise ExportError(f"{where}: state[{k}] must be a list")
        for t in tensors:
            shape = _keys(t, f"{where}: state[{k}]", ("name", "shape", "dtype"))["shape"]
            if not isinstance(t["name"], str) or t["dtype"] not in STATE_DTYPES:
                raise ExportError(f"{where}: state[{k}] has a bad name or dtype: {t!r}")
            if not isinstance(shape, list) or not shape or shape[0] != "batch":
                raise ExportError(f"{where}: state[{k}] shape must start with 'batch': {t!r}")
            if not all(_int(v) for v in shape[1:]):
                raise ExportError(f"{where}: state[{k}] shape must be ints >= 1: {t!r}")
        names.append([t["name"] for t in tensors])
    files = set()
    for k, e in enumerate(exits):
        e = _keys(
            e,
            f"{where}: exits[{k}]",
            ("index", "file", "inputs", "outputs", "macs"),
            ("latency_ms",),
        )
        file = _plain_name(e["file"], f"{where}: exits[{k}].file")
        if e["index"] != k or not file.endswith(".onnx") or file in files:
            raise ExportError(f"{where}: exits[{k}] needs index {k} and its own .onnx file")
        files.add(file)
        inputs = ["images"] if k == 0 else names[k - 1]
        outputs = ["logits", *(names[k] if k < n - 1 else [])]
        if e["inputs"] != inputs or e["outputs"] != outputs:
            raise ExportError(f"{where}: exits[{k}] inputs/outputs do not chain the state")
        if e["macs"] != m["costs"]["macs"][k]:
            raise ExportError(f"{where}: exits[{k}].macs differs from costs.macs[{k}]")
        latency = m["costs"]["latency_ms"]
        if e.get("latency_ms") != (None if latency is None else latency[k]):
            raise ExportError(f"{where}: exits[{k}].latency_ms differs from costs.latency_ms")


def _check_quantization(q: Any, where: str) -> None:
    keys = ("method", "format", "weights", "activations", "reduce_range", "uint8_state")
    q = _keys(q, where, (*keys, "calibration_images"))
    texts = all(isinstance(q[k], str) for k in ("method", "format", "weights"))
    if not texts or q["activations"] not in ("uint8", "int8") or not _int(q["calibration_images"]):
        raise ExportError(f"{where}: malformed record {dict(q)!r}")
    state = q["uint8_state"]
    if not isinstance(q["reduce_range"], bool) or not (
        isinstance(state, list) and all(isinstance(s, list) for s in state)
    ):
        raise ExportError(f"{where}: malformed record {dict(q)!r}")


def check_manifest(m: Any, where: str = MANIFEST) -> dict[str, Any]:
    """Validate a manifest document field by field (the one check both runners use).

    Raises:
        ExportError: Naming the field.
    """
    required: tuple[str, ...] = ("format", "format_version", "adanet_version", "num_exits")
    required += ("num_classes",)
    required += ("input", "exits", "state", "costs", "preprocessing", "policy", "session")
    m = _keys(m, where, required, ("quantization",))
    if m["format"] != FORMAT:
        raise ExportError(f"{where}: format must be {FORMAT!r}, got {m['format']!r}")
    version = m["format_version"]
    if not _int(version) or version > SUPPORTED_FORMAT_VERSION or version < 2:
        raise ExportError(
            f"{where} has format version {version!r}; this session reads version "
            f"{SUPPORTED_FORMAT_VERSION}: use the early_exit_session.py exported with it"
        )
    n, classes = m["num_exits"], m["num_classes"]
    if not _int(n) or not _int(classes) or not isinstance(m["adanet_version"], str):
        raise ExportError(f"{where}: num_exits and num_classes must be ints >= 1")
    image = _keys(m["input"], f"{where}: input", ("name", "shape", "dtype"))
    shape = image["shape"]
    if (image["name"], image["dtype"]) != ("images", "float32") or not (
        isinstance(shape, list)
        and len(shape) == 4
        and shape[0] == "batch"
        and all(_int(v) for v in shape[1:])
    ):
        raise ExportError(f"{where}: input must be float32 'images' of ['batch', C, H, W]")
    costs = _keys(m["costs"], f"{where}: costs", ("convention", "input_size", "macs", "latency_ms"))
    if costs["convention"] not in ("actual", "reference") or costs["input_size"] != shape[1:]:
        raise ExportError(f"{where}: costs need a known convention and the input's [C, H, W]")
    _cumulative(costs["macs"], n, f"{where}: costs.macs")
    if costs["latency_ms"] is not None:
        _cumulative(costs["latency_ms"], n, f"{where}: costs.latency_ms")
    prep = _keys(m["preprocessing"], f"{where}: preprocessing", ("mean", "std", "input_size"))
    if prep["input_size"] != shape[1:] or (prep["mean"] is None) != (prep["std"] is None):
        raise ExportError(f"{where}: preprocessing needs the input's size, and mean with std")
    for key, low in (("mean", -math.inf), ("std", 0.0)):
        values = prep[key]
        if values is not None and not (
            isinstance(values, list)
            and len(values) == shape[1]
            and all(_number(v) and math.isfinite(v) and v > low for v in values)
        ):
            raise ExportError(f"{where}: preprocessing.{key} must be {shape[1]} finite numbers")
    _plain_name(m["session"], f"{where}: session")
    if "quantization" in m:
        _check_quantization(m["quantization"], f"{where}: quantization")
    _check_exits(m, where, n)
    if m["policy"] is not None:
        try:
            parse_policy(m["policy"], n, classes, shape[2:])
        except ValueError as error:
            raise ExportError(f"{where}: policy: {error}") from None
    return dict(m)


def read_export(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], list[bytes]]:
    """Check an export folder and read it: the validated manifest and every stage's bytes.

    Every file listed in ``checksums.json`` must be there unaltered; the manifest and every
    stage must be listed.

    Raises:
        FileNotFoundError: No such folder, or a listed file is missing.
        ExportError: A file that is altered, a link, not a plain name, or a malformed manifest.
    """
    folder = _existing(os.fspath(directory))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no export folder at {os.fspath(directory)!r}")
    verified = _Verified(folder)
    where = os.path.join(folder, MANIFEST)
    manifest = check_manifest(_json(verified.read(MANIFEST, MAX_JSON_BYTES), where), where)
    stages = [verified.read(e["file"], MAX_STAGE_BYTES) for e in manifest["exits"]]
    for name in verified.files.keys() - {MANIFEST, *(e["file"] for e in manifest["exits"])}:
        verified.read(name, MAX_STAGE_BYTES)
    return manifest, stages


def check_stage(session: Any, k: int, manifest: Mapping[str, Any]) -> list[str]:
    """Compare stage ``k``'s graph with the manifest; returns the inputs it reads.

    Raises:
        ExportError: An input or output the manifest does not describe, or of another type or
            shape.
    """
    entry = manifest["exits"][k]
    c, h, w = manifest["input"]["shape"][1:]
    described = (
        {"images": {"shape": ["batch", c, h, w], "dtype": "float32"}}
        if k == 0
        else {t["name"]: t for t in manifest["state"][k - 1]}
    )
    outputs = {"logits": {"shape": ["batch", manifest["num_classes"]], "dtype": "float32"}}
    outputs.update(
        {t["name"]: t for t in manifest["state"][k]} if k < len(manifest["exits"]) - 1 else {}
    )
    where = f"stage {entry['file']}"
    returned = [o.name for o in session.get_outputs()]
    if returned != list(outputs):
        raise ExportError(f"{where} returns {returned}, the manifest says {list(outputs)}")
    for arg, table in [(a, described) for a in session.get_inputs()] + [
        (o, outputs) for o in session.get_outputs()
    ]:
        want = table.get(arg.name)
        if want is None:
            raise ExportError(f"{where} takes {arg.name!r}, which the manifest does not describe")
        expected_type = _ONNX_TYPES.get(want["dtype"], f"tensor({want['dtype']})")
        dims = [d if isinstance(d, int) else "batch" for d in arg.shape]
        if (
            arg.type != expected_type
            or dims[1:] != list(want["shape"][1:])
            or len(dims) != len(want["shape"])
        ):
            raise ExportError(
                f"{where}: {arg.name!r} is {arg.type} {dims}; the manifest says "
                f"{want['dtype']} {want['shape']}"
            )
    return [i.name for i in session.get_inputs()]
