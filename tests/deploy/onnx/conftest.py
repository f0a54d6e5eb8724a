"""One small RANet exported to ONNX once for the whole ONNX test package (exporting is slow)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.calibration import calibrate_shares

pytest.importorskip("onnxruntime", reason="the 'onnx' extra is not installed")
pytest.importorskip("onnxscript", reason="the 'onnx' extra is not installed")


@dataclass(frozen=True)
class Exported:
    """A model, a policy calibrated on other images, and the directory export_onnx wrote."""

    model: RANet
    policy: EarlyExitPolicy
    directory: Path
    latency_ms: tuple[float, ...]


def small_ranet(seed: int = 5) -> RANet:
    """A 3-exit RANet with non-trivial BatchNorm statistics and confident-ish exits."""
    torch.manual_seed(seed)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
        if isinstance(module, nn.Linear):  # spread the logits so confidences vary
            module.weight.data.mul_(8.0)
    return model.eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    from adanet.deploy.onnx import export_onnx

    model = small_ranet()
    calibration = torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        logits = model(calibration)
    policy = calibrate_shares(logits, [0.4, 0.3, 0.3])
    assert all(math.isfinite(t) for t in policy.thresholds[:-1])
    directory = tmp_path_factory.mktemp("onnx") / "ranet"
    latency = (0.5, 0.9, 1.4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_onnx(
            model,
            directory,
            32,
            policy,
            preprocessing={"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": [3, 32, 32]},
            latency_ms=latency,
        )
    finally:
        torch.set_num_threads(threads)
    return Exported(model, policy, directory, latency)


@pytest.fixture
def make_small_ranet() -> Callable[[], RANet]:
    """:func:`small_ranet`, for tests that need a fresh model."""
    return small_ranet
