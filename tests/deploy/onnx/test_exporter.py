"""``export_onnx``: the files, the manifest, and errors that name the stage and operator."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import EarlyExitPolicy
from adanet.deploy.onnx import export_onnx
from adanet.deploy.onnx.export_format import ExportError
from adanet.deploy.stages import StageExportError, state_signature
from conftest import load_example

onnx = pytest.importorskip("onnx")

KILL_WRITERS = Path(__file__).resolve().parents[2] / "kill_writers.py"
SESSION_SOURCE = Path(adanet.__file__).parent / "deploy" / "onnx" / "early_exit_session.py"


def test_directory_holds_stages_manifest_and_session(exported: Any) -> None:
    names = sorted(p.name for p in exported.directory.iterdir())
    assert names == [
        "checksums.json",
        "early_exit_session.py",
        "export_format.py",
        "manifest.json",
        "stage_0.onnx",
        "stage_1.onnx",
        "stage_2.onnx",
    ]
    for runner in ("early_exit_session.py", "export_format.py"):
        copied = (exported.directory / runner).read_bytes()
        assert copied == (SESSION_SOURCE.parent / runner).read_bytes()


def test_manifest_describes_exits_state_costs_and_policy(exported: Any) -> None:
    manifest = json.loads((exported.directory / "manifest.json").read_text())
    model = exported.model
    assert manifest["format_version"] == 2
    assert manifest["num_exits"] == 3 and manifest["num_classes"] == 10
    assert manifest["input"] == {
        "name": "images",
        "shape": ["batch", 3, 32, 32],
        "dtype": "float32",
    }
    assert manifest["policy"] == exported.policy.to_dict()
    macs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    assert manifest["costs"]["macs"] == macs
    assert manifest["costs"]["input_size"] == [3, 32, 32]
    assert manifest["costs"]["latency_ms"] == list(exported.latency_ms)
    assert [e["macs"] for e in manifest["exits"]] == macs
    assert [e["latency_ms"] for e in manifest["exits"]] == list(exported.latency_ms)
    assert manifest["preprocessing"] == {
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "input_size": [3, 32, 32],
    }
    signature = state_signature(model, torch.zeros(1, 3, 32, 32))
    assert len(manifest["state"]) == 2
    for k, tensors in enumerate(manifest["state"]):
        assert [t["name"] for t in tensors] == [f"state_{k}_{i}" for i in range(len(tensors))]
        assert [(tuple(t["shape"][1:]), t["dtype"]) for t in tensors] == [
            (shape, str(dtype).removeprefix("torch.")) for shape, dtype in signature[k]
        ]
        assert all(t["shape"][0] == "batch" for t in tensors)
        assert manifest["exits"][k]["outputs"] == ["logits", *[t["name"] for t in tensors]]
        assert manifest["exits"][k + 1]["inputs"] == [t["name"] for t in tensors]
    assert manifest["exits"][0]["inputs"] == ["images"]
    assert manifest["exits"][2]["outputs"] == ["logits"]


def test_onnx_files_have_a_dynamic_batch_dimension(exported: Any) -> None:
    for k in range(3):
        proto = onnx.load(str(exported.directory / f"stage_{k}.onnx"))
        onnx.checker.check_model(proto)
        for value in [*proto.graph.input, *proto.graph.output]:
            first = value.type.tensor_type.shape.dim[0]
            assert first.dim_param == "batch", (k, value.name)


def test_bad_arguments_are_refused_before_exporting(
    tmp_path: Path, make_small_ranet: Callable[[], adanet.RANet]
) -> None:
    model = make_small_ranet()
    with pytest.raises(ValueError, match="decides for 2 exits but the model has 3"):
        export_onnx(model, tmp_path, 32, EarlyExitPolicy([0.5, 0.5]))
    with pytest.raises(ValueError, match="latency_ms has 1 entries"):
        export_onnx(model, tmp_path, 32, latency_ms=[1.0])
    with pytest.raises(ValueError, match="input_size"):
        export_onnx(model, tmp_path, (1, 2, 3, 4))
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        export_onnx(nn.Linear(2, 2), tmp_path, 32)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_small_ranet: Callable[[], adanet.RANet]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[onnx\]"):
        export_onnx(make_small_ranet(), tmp_path, 32)


@torch.library.custom_op("adanet_test::wobble", mutates_args=())
def _wobble(x: Tensor) -> Tensor:
    return x * 1.0


@_wobble.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


class _Unconvertible(adanet.EarlyExitNetwork):
    """Two exits; the second stage calls an operator ONNX has no translation for."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 3
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.exits = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)) for _ in range(2)
        )

    def begin(self, x: Tensor) -> Any:
        return self.conv(x)

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        if exit_index == 1:
            state = _wobble(state)
        return state, state


def test_export_failure_names_the_stage_and_operator(tmp_path: Path) -> None:
    with pytest.raises(StageExportError, match=r"stage 1 .*adanet_test[.:]+wobble") as info:
        export_onnx(_Unconvertible().eval(), tmp_path, 8)
    assert info.value.stage == 1
    assert info.value.operator is not None and "wobble" in info.value.operator


def test_a_registered_network_of_your_own_exports_and_runs(tmp_path: Path) -> None:
    """examples/custom_network.py's network, built by name, runs in ONNX Runtime as in torch."""
    from adanet.deploy.onnx import OnnxRuntimeNetwork

    load_example("custom_network")  # registers "tiny_multiscale"
    torch.manual_seed(0)
    model = adanet.create_model("tiny_multiscale", num_classes=5).eval()
    policy = EarlyExitPolicy([0.6] * (model.num_exits - 1) + [-float("inf")])
    export_onnx(model, tmp_path / "onnx", 32, policy)
    network = OnnxRuntimeNetwork(tmp_path / "onnx", threads=1)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(network(x), model(x), strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ checks before writing


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"latency_ms": [math.nan, 1.0, 2.0]}, "finite and non-negative"),
        ({"latency_ms": [1.0, -1.0, 2.0]}, "finite and non-negative"),
        ({"latency_ms": [1.0, 2.0, "3"]}, "must hold numbers"),
        ({"latency_ms": [3.0, 2.0, 1.0]}, "cumulative"),
        ({"policy": EarlyExitPolicy([0.5, 0.5, 0.5], num_classes=99)}, "num_classes=99"),
        ({"policy": EarlyExitPolicy([0.5, 0.5, 0.5], input_size=16)}, r"input_size=\(16, 16\)"),
        (
            {"preprocessing": {"mean": [0.5], "std": [0.5], "input_size": [1, 32, 32]}},
            "1-channel images; the model takes 3",
        ),
        (
            {"preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3, "input_size": [3, 16, 16]}},
            "export is for",
        ),
    ],
)
def test_what_does_not_fit_the_model_is_refused_before_writing(
    exported: Any, tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    target = tmp_path / "export"
    shutil.copytree(exported.directory, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(ValueError, match=message):
        export_onnx(exported.model, target, 32, **arguments)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_folder_holding_other_files_is_refused_not_emptied(
    tmp_path: Path, make_small_ranet: Callable[[], adanet.RANet]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"notes.txt"):
        export_onnx(make_small_ranet(), tmp_path, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_exported_files_follow_the_umask(
    tmp_path: Path, make_small_ranet: Callable[[], adanet.RANet]
) -> None:
    previous = os.umask(0o027)
    try:
        export_onnx(make_small_ranet(), tmp_path / "export", 32)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == 0o750
    for file in (tmp_path / "export").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o640, file.name


@pytest.mark.slow
def test_sigkill_during_export_leaves_the_old_or_the_new_export(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, str(KILL_WRITERS), "onnx", str(tmp_path / "e"), "exchange", "4", "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    held = [line["held"] for line in lines[:-1]]
    assert len(held) == 4 and set(held) <= {"A", "B"}, held
    assert lines[-1]["left"] == ["e"]
