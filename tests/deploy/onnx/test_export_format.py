"""The checks of an export folder, shared by ``EarlyExitSession`` (torch-free) and
``OnnxRuntimeNetwork``: checksums, confined names, links, the manifest's fields, stages that
do not match it, image dtypes, and a policy parser that accepts exactly what adanet's does."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adanet.deploy.onnx import EarlyExitSession, OnnxRuntimeNetwork
from adanet.deploy.onnx.export_format import ExportError, parse_policy
from adanet.policies.protocol import check_policy_fits
from adanet.policies.serialization import policy_from_dict
from sealed_folders import reseal

RUNNERS: dict[str, Callable[[Path], Any]] = {
    "session": lambda d: EarlyExitSession(d, threads=1),
    "network": lambda d: OnnxRuntimeNetwork(d, threads=1),
}


@pytest.fixture
def copy(exported: Any, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(exported.directory, target)
    return target


def _edit_manifest(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    reseal(directory)


# ------------------------------------------------------------------ checksums and names


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_stage_from_another_export_does_not_run(
    copy: Path, tmp_path: Path, runner: str, make_small_ranet: Callable[..., Any]
) -> None:
    from adanet.deploy.onnx import export_onnx

    other = export_onnx(make_small_ranet(seed=9), tmp_path / "other", 32)
    shutil.copyfile(other / "stage_1.onnx", copy / "stage_1.onnx")
    with pytest.raises(ExportError, match=r"stage_1.onnx was altered or comes from another"):
        RUNNERS[runner](copy)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("name", ["../stage_0.onnx", "/tmp/stage_0.onnx", "sub/stage_0.onnx"])
def test_stage_names_outside_the_folder_are_refused(copy: Path, runner: str, name: str) -> None:
    _edit_manifest(copy, lambda m: m["exits"][0].__setitem__("file", name))
    with pytest.raises(ExportError, match="not a plain file name"):
        RUNNERS[runner](copy)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("name", ["stage_2.onnx", "manifest.json", "checksums.json"])
def test_linked_files_are_refused(copy: Path, tmp_path: Path, runner: str, name: str) -> None:
    outside = tmp_path / f"outside-{name}"
    (copy / name).rename(outside)
    (copy / name).symlink_to(outside)
    with pytest.raises(ExportError, match="symbolic link"):
        RUNNERS[runner](copy)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_an_export_without_checksums_is_refused(copy: Path, runner: str) -> None:
    (copy / "checksums.json").unlink()
    with pytest.raises(ExportError, match=r"no checksums.json"):
        RUNNERS[runner](copy)


# ------------------------------------------------------------------ the manifest's fields


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            manifest = manifest[int(key)] if key.isdigit() else manifest[key]
        if value is _DELETE:
            del manifest[last]
        else:
            manifest[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format", "onnx-of-someone-else", "format must be 'adanet-onnx'"),
        ("format_version", True, "format version True"),
        ("exits", _DELETE, r"missing keys \['exits'\]"),
        ("extra", 1, r"unknown keys \['extra'\]"),
        ("num_exits", 4, "3 entries but there are 4 exits"),
        ("costs.macs", [3.0, 2.0, 1.0], "cumulative"),
        ("costs.macs", [-1.0, 0.0, 1.0], "non-negative"),
        ("costs.macs", [1.0], "1 entries but there are 3"),
        ("costs.macs", "abc", "list of numbers"),
        ("costs", None, "costs must be a JSON object"),
        ("costs.latency_ms", [1.0, "3", 2.0], "list of numbers"),
        ("exits.1.index", 5, "needs index 1"),
        ("exits.1.inputs", ["images"], "do not chain the state"),
        ("state.0.0.dtype", "complex64", "bad name or dtype"),
        ("input.dtype", "uint8", "input must be float32"),
        ("preprocessing.std", [0.25, 0.0, 0.25], "std must be 3 finite numbers"),
        ("preprocessing.mean", [0.5], "mean must be 3 finite numbers"),
        ("policy.thresholds", [0.5, 0.5], "decides for 2 exits"),
        ("policy.num_classes", 99, "calibrated for 99 classes"),
        ("policy.input_size", [16, 16], "calibrated for input_size"),
        ("policy.temperature", [2, 2, 2], "unknown keys"),
    ],
)
def test_malformed_manifests_are_clear_errors(
    copy: Path, runner: str, field: str, value: Any, message: str
) -> None:
    _edit_manifest(copy, _set(field, value))
    with pytest.raises(ExportError, match=message) as caught:
        RUNNERS[runner](copy)
    assert "manifest.json" in str(caught.value)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_stages_that_do_not_match_the_manifest_are_named(copy: Path, runner: str) -> None:
    # Someone able to rewrite the checksums swaps two stages: the graphs give them away.
    (copy / "stage_0.onnx").rename(copy / "swap")
    (copy / "stage_1.onnx").rename(copy / "stage_0.onnx")
    (copy / "swap").rename(copy / "stage_1.onnx")
    reseal(copy)
    with pytest.raises(ExportError, match=r"stage stage_0\.onnx"):
        RUNNERS[runner](copy)


# ------------------------------------------------------------------ images


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.bool_, np.complex64])
def test_the_session_refuses_images_that_are_not_floating_point(exported: Any, dtype: Any) -> None:
    session = EarlyExitSession(exported.directory, threads=1)
    with pytest.raises(TypeError, match=f"got dtype {np.dtype(dtype)}"):
        session.run(np.ones((2, 3, 32, 32), dtype=dtype))


def test_the_session_runs_float64_images_as_float32(exported: Any) -> None:
    session = EarlyExitSession(exported.directory, threads=1)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32))
    wide, narrow = session.run(x), session.run(x.astype(np.float32))
    np.testing.assert_array_equal(wide["exit_index"], narrow["exit_index"])
    np.testing.assert_array_equal(wide["logits"], narrow["logits"])


# ------------------------------------------------------------------ the two policy parsers

CONTEXT = {"num_exits": 3, "num_classes": 10, "input_size": (32, 32)}

DOCUMENTS: list[Any] = [
    {"thresholds": [0.5, 0.6, 0.0]},
    {"thresholds": [0.5, 0.6, "-inf"], "measure": "entropy"},
    {"thresholds": [" INF ", "+infinity", "-Infinity"], "measure": "margin"},
    {"thresholds": ["nan", 0.5, 0.5]},
    {"thresholds": [float("nan"), 0.5, 0.5]},
    {"thresholds": [float("inf"), 0.5, 0.5]},
    {"thresholds": ["0.5", 0.5, 0.5]},
    {"thresholds": [True, 0.5, 0.5]},
    {"thresholds": [10**400, 0.5, 0.5]},
    {"thresholds": [0.5, 0.5]},
    {"thresholds": []},
    {"thresholds": "0.5"},
    {"thresholds": {"0": 0.5}},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": "111"},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": [1, 1, 1]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": ["1", "1", "1"]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": [1, 0, 1]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": [1, float("inf"), 1]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": [1, 1]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": [True, 1, 1]},
    {"thresholds": [0.5, 0.5, 0.5], "temperatures": None},
    {"thresholds": [0.5, 0.5, 0.5], "temperature": [2, 2, 2]},
    {"thresholds": [0.5, 0.5, 0.5], "measure": "wild"},
    {"thresholds": [0.5, 0.5, 0.5], "measure": None},
    {"thresholds": [0.5, 0.5, 0.5], "measure": 3},
    {"thresholds": [0.5, 0.5, 0.5], "num_classes": 10},
    {"thresholds": [0.5, 0.5, 0.5], "num_classes": 11},
    {"thresholds": [0.5, 0.5, 0.5], "num_classes": 10.0},
    {"thresholds": [0.5, 0.5, 0.5], "num_classes": True},
    {"thresholds": [0.5, 0.5, 0.5], "num_classes": 0},
    {"thresholds": [0.5, 0.5, 0.5], "cost_convention": "actual"},
    {"thresholds": [0.5, 0.5, 0.5], "cost_convention": ""},
    {"thresholds": [0.5, 0.5, 0.5], "cost_convention": 3},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": 32},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [32, 32]},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [3, 32, 32]},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [0, 32, 32]},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [16, 16]},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [32]},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": "32"},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": True},
    {"thresholds": [0.5, 0.5, 0.5], "input_size": [32.0, 32]},
    {"measure": "patience", "patience": 2, "thresholds": [2.0, 2.0, 2.0]},
    {"measure": "patience", "thresholds": [2, 2, 2]},
    {"measure": "patience", "patience": 2.0, "thresholds": [2, 2, 2]},
    {"measure": "patience", "patience": 2, "thresholds": [2, 3, 2]},
    {"measure": "patience", "patience": 2.5, "thresholds": [2.5, 2.5, 2.5]},
    {"measure": "patience", "patience": 0, "thresholds": [0, 0, 0]},
    {"measure": "patience", "patience": True, "thresholds": [1, 1, 1]},
    {"measure": "patience", "patience": 2, "thresholds": [2, 2]},
    {"measure": "patience", "patience": 2, "thresholds": [2, 2, 2], "num_classes": 10},
    {"measure": "patience", "patience": 2, "thresholds": [2, 2, 2], "num_classes": 9},
    {"measure": "patience", "patience": 2, "thresholds": [2, 2, 2], "temperatures": [1, 1, 1]},
    {"measure": "patience", "patience": 2, "thresholds": [2, 2, 2], "input_size": 32},
    {"measure": "patience", "patience": 2, "thresholds": []},
    {"measure": "patience", "patience": 2},
    {"measure": "max_prob"},
    [0.5, 0.5, 0.5],
    "policy",
    None,
]


def _torch_side(document: Any) -> tuple[str, list[float], Any] | None:
    try:
        policy = policy_from_dict(document)
        check_policy_fits(policy, **CONTEXT)
    except (TypeError, ValueError):
        return None
    temperatures = getattr(policy, "temperatures", None)
    thresholds = [float(t) for t in policy.to_dict()["thresholds"]]
    return policy.measure, thresholds, None if temperatures is None else list(temperatures)


def _session_side(document: Any) -> tuple[str, list[float], Any] | None:
    try:
        parsed = parse_policy(document, 3, 10, (32, 32))
    except ValueError:
        return None
    return parsed["measure"], parsed["thresholds"], parsed["temperatures"]


def _mutations(rng: random.Random, count: int) -> list[Any]:
    values: list[Any] = [
        0, 1, 2, 3, -1, 0.5, 2.0, 10, 32, 16, float("inf"), float("nan"), True, None, "inf",
        "-inf", "nan", "1", "", "max_prob", "entropy", "margin", "patience", "actual",
        [], [0.5], [0.5, 0.5, 0.5], [1, 1, 1], [2, 2, 2], [32, 32], [3, 32, 32], ["inf"] * 3,
        [0.5, "inf", 0.5], {}, [True, 1, 1], [0.5, 0.5, float("nan")],
    ]  # fmt: skip
    keys = [
        "thresholds", "measure", "temperatures", "num_classes", "cost_convention",
        "input_size", "patience", "temperature", "extra",
    ]  # fmt: skip
    documents = []
    for _ in range(count):
        base = dict(rng.choice([d for d in DOCUMENTS if isinstance(d, dict)]))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            if rng.random() < 0.2:
                base.pop(key, None)
            else:
                base[key] = rng.choice(values)
        documents.append(base)
    return documents


def test_both_parsers_accept_exactly_the_same_documents() -> None:
    documents = DOCUMENTS + _mutations(random.Random(0), 3000)
    accepted = 0
    for document in documents:
        ours, theirs = _torch_side(document), _session_side(document)
        assert (ours is None) == (theirs is None), document
        if ours is not None and theirs is not None:
            accepted += 1
            assert ours[0] == theirs[0] and ours[2] == theirs[2], document
            assert all(
                a == b or (math.isinf(a) and a == b)
                for a, b in zip(ours[1], theirs[1], strict=True)
            ), document
    # Both sides of the boundary are exercised.
    assert 100 < accepted < len(documents) - 100
