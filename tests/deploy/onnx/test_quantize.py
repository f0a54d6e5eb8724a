"""int8 stages: ``quantize_onnx``, ``calibration_images`` and
``adanet.deploy.quantize_for_inference``.

Tolerance of the int8 logits, derived rather than fitted: an activation quantized to uint8 over
its calibrated min-max range (about 8 standard deviations for hundreds of images) has a step of
about sigma/32, so rounding adds noise of sigma/(32*sqrt(12)), ~0.9% of its spread; 7-bit
per-channel weights (step 2*max|w|/254, max|w| ~3.5 sigma_w) add ~0.8% per convolution. The last
exit of the small RANet sits behind about 15 quantized tensors; independent errors add in
quadrature, sqrt(15 * (0.9^2 + 0.8^2)) ~ 4.7% of the logits' spread. Allowing twice that for
correlated errors: the RMS error of each exit's logits must stay within 10% of their standard
deviation, and samples whose top-1 leads the runner-up by more than six such errors
(0.6 standard deviations) must keep their top-1.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import nn

import adanet
from adanet.deploy.onnx import EarlyExitSession, OnnxRuntimeNetwork, quantize_onnx
from adanet.deploy.onnx.export_format import ExportError
from adanet.deploy.onnx.quantize import calibration_images
from conftest import load_example

pytestmark = pytest.mark.usefixtures("single_thread")

RELATIVE_RMS = 0.10
SAFE_MARGIN = 6 * RELATIVE_RMS


def _images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _check_close(int8: list[torch.Tensor], fp32: list[torch.Tensor]) -> None:
    assert len(int8) == len(fp32)
    for k, (ours, theirs) in enumerate(zip(int8, fp32, strict=True)):
        assert ours.shape == theirs.shape
        spread = float(theirs.std())
        rms = float((ours - theirs).pow(2).mean().sqrt())
        assert rms <= RELATIVE_RMS * spread, f"exit {k}: RMS error {rms:.4f}, spread {spread:.4f}"
        top2 = theirs.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > SAFE_MARGIN * spread
        assert torch.equal(ours.argmax(1)[clear], theirs.argmax(1)[clear]), f"exit {k}"


def _is_int8(path: Path) -> bool:
    """Whether the stage file holds quantize/dequantize nodes and int8 weights."""
    model = onnx.load(str(path))
    kinds = {node.op_type for node in model.graph.node}
    weights = {init.data_type for init in model.graph.initializer}
    return {"QuantizeLinear", "DequantizeLinear"} <= kinds and onnx.TensorProto.INT8 in weights


# ---------------------------------------------------------------- quantize_onnx (fast)


@pytest.fixture(scope="module")
def int8_directory(exported: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("int8") / "ranet"
    return quantize_onnx(exported.directory, target, _images(256, seed=21).split(64), threads=1)


def test_quantize_onnx_writes_the_same_layout_in_int8(exported: Any, int8_directory: Path) -> None:
    source = json.loads((exported.directory / "manifest.json").read_text())
    manifest = json.loads((int8_directory / "manifest.json").read_text())
    assert manifest["exits"] == source["exits"]
    for ours, theirs in zip(manifest["state"], source["state"], strict=True):
        assert [(e["name"], e["shape"]) for e in ours] == [(e["name"], e["shape"]) for e in theirs]
    assert manifest["quantization"]["calibration_images"] == 256
    assert manifest["quantization"]["activations"] == "uint8"
    for entry in manifest["exits"]:
        assert _is_int8(int8_directory / entry["file"])
        assert not _is_int8(exported.directory / entry["file"])
    assert (int8_directory / "early_exit_session.py").read_bytes() == (
        exported.directory / "early_exit_session.py"
    ).read_bytes()


def test_int8_stages_agree_with_the_model(exported: Any, int8_directory: Path) -> None:
    x = _images(128, seed=22)
    with torch.no_grad():
        expected = exported.model(x)
    _check_close(OnnxRuntimeNetwork(int8_directory, threads=1)(x), expected)


def test_session_runs_the_int8_directory_unchanged(exported: Any, int8_directory: Path) -> None:
    x = _images(64, seed=23)
    network = OnnxRuntimeNetwork(int8_directory, threads=1)
    ours = adanet.early_exit(network, x, exported.policy)
    out = EarlyExitSession(int8_directory, threads=1).run(x.numpy())
    # The same int8 graphs and the same policy: the same decisions and logits.
    assert torch.equal(torch.from_numpy(out["exit_index"]), ours.exit_index)
    torch.testing.assert_close(torch.from_numpy(out["logits"]), ours.logits)


def test_uint8_state_changes_no_output(exported: Any, int8_directory: Path, tmp_path: Path) -> None:
    manifest = json.loads((int8_directory / "manifest.json").read_text())
    passed = manifest["quantization"]["uint8_state"]
    assert any(passed), "no state tensor passed as uint8"
    for names, states in zip(passed, manifest["state"], strict=True):
        assert {e["name"] for e in states if e["dtype"] == "uint8"} == set(names)
    plain = quantize_onnx(
        exported.directory,
        tmp_path / "plain",
        _images(256, seed=21).split(64),
        uint8_state=False,
        threads=1,
    )
    plain_manifest = json.loads((plain / "manifest.json").read_text())
    assert plain_manifest["quantization"]["uint8_state"] == []
    assert all(e["dtype"] == "float32" for states in plain_manifest["state"] for e in states)
    # Dequantizing a state and quantizing it again with the same parameters gives back the
    # same integers, so skipping both changes nothing.
    x = _images(48, seed=28)
    state = OnnxRuntimeNetwork(int8_directory, threads=1).begin(x)
    _, state = OnnxRuntimeNetwork(int8_directory, threads=1).advance(state, 0)
    assert any(t.dtype == torch.uint8 for t in state)
    ours = OnnxRuntimeNetwork(int8_directory, threads=1)(x)
    theirs = OnnxRuntimeNetwork(plain, threads=1)(x)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_quantize_onnx_refuses_bad_arguments(exported: Any, tmp_path: Path) -> None:
    batches = [_images(8, seed=24)]
    with pytest.raises(ValueError, match="to_directory must differ"):
        quantize_onnx(exported.directory, exported.directory, batches)
    with pytest.raises(ValueError, match="'int4'"):
        quantize_onnx(exported.directory, tmp_path / "x", batches, activations="int4")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"manifest.json"):
        quantize_onnx(tmp_path, tmp_path / "x", batches)
    with pytest.raises(ValueError, match="16x16"):
        quantize_onnx(exported.directory, tmp_path / "x", [_images(8, seed=25, size=16)])


# ---------------------------------------------------------------- calibration_images


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_calibration_images_must_be_finite(bad: float) -> None:
    images = _images(4, seed=26)
    images[2, 1, 3, 4] = bad
    with pytest.raises(ValueError, match="batch 1 holds NaN or infinite"):
        calibration_images([_images(2, seed=27), images], 3)


def test_the_int8_folder_is_checksummed_and_follows_the_umask(
    exported: Any, tmp_path: Path
) -> None:
    previous = os.umask(0o027)
    try:
        target = quantize_onnx(exported.directory, tmp_path / "int8", [_images(8, seed=28)])
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    for file in target.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o640, file.name
    (target / "stage_2.onnx").write_bytes((exported.directory / "stage_2.onnx").read_bytes())
    with pytest.raises(ExportError, match=r"stage_2.onnx was altered"):
        EarlyExitSession(target)


def test_calibration_images_are_checked() -> None:
    good = _images(4, seed=26)
    assert [t.shape for t in calibration_images(iter([good, good[:2]]), 3)] == [
        (4, 3, 32, 32),
        (2, 3, 32, 32),
    ]
    with pytest.raises(ValueError, match="no images"):
        calibration_images([], 3)
    with pytest.raises(ValueError, match="no images"):
        calibration_images([good[:0]], 3)
    with pytest.raises(TypeError, match="calibration batch 1 is a tuple"):
        calibration_images([good, (good, 0)], 3)
    with pytest.raises(TypeError, match="single tensor"):
        calibration_images(good, 3)
    with pytest.raises(TypeError, match="got int"):
        calibration_images(5, 3)
    with pytest.raises(TypeError, match=r"torch\.uint8"):
        calibration_images([good.to(torch.uint8)], 3)
    with pytest.raises(ValueError, match=r"\(4, 1, 32, 32\)"):
        calibration_images([good[:, :1]], 3)
    with pytest.raises(ValueError, match="16x16"):
        calibration_images([good, _images(2, seed=27, size=16)], 3)


# ---------------------------------------------------------------- quantize_for_inference


def _check_quantized_network(model: adanet.EarlyExitNetwork, size: int, tmp: Path) -> None:
    calibration = _images(192, seed=31, size=size)
    int8 = adanet.deploy.quantize_for_inference(
        model, calibration.split(64), directory=tmp, threads=1
    )
    assert isinstance(int8, adanet.EarlyExitNetwork) and int8.num_exits == model.num_exits
    x = _images(96, seed=32, size=size)
    with torch.no_grad():
        expected = model(x)
    _check_close(int8(x), expected)
    policy = adanet.calibrate_shares(expected, [0.6] + [0.0] * (model.num_exits - 2) + [0.4])
    ours = adanet.early_exit(int8, x, policy)
    theirs = adanet.early_exit(model, x, policy)
    assert ours.logits.shape == theirs.logits.shape
    assert ours.exit_index.dtype == torch.long and set(ours.exit_index.tolist()) == {
        0,
        model.num_exits - 1,
    }
    # Costs are the float model's MACs of the exit each sample left at.
    costs = torch.tensor([c.macs for c in adanet.measure_exit_costs(model, size)])
    torch.testing.assert_close(ours.cost, costs.double()[ours.exit_index])
    assert float((ours.exit_index == theirs.exit_index).double().mean()) >= 0.9
    assert _is_int8(tmp / "stage_0.onnx")


def test_quantize_for_inference_ranet(make_small_ranet: Any, tmp_path: Path) -> None:
    _check_quantized_network(make_small_ranet(), 32, tmp_path)


@pytest.mark.slow
def test_quantize_for_inference_msdnet(tmp_path: Path) -> None:
    torch.manual_seed(7)
    config = adanet.MSDNetConfig(num_blocks=2, base=1, step=1, num_channels=4, growth_rate=4)
    model = adanet.MSDNet(config).eval()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.data.mul_(8.0)
    _check_quantized_network(model, 32, tmp_path)


@pytest.mark.slow
def test_quantize_for_inference_custom_network(tmp_path: Path) -> None:
    torch.manual_seed(8)
    model = load_example("custom_network").TinyMultiScaleNet(num_classes=10, in_channels=3)
    _check_quantized_network(model.eval(), 32, tmp_path)
