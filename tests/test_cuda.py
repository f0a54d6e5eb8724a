"""CUDA paths: skipped without a GPU, run whenever one is available."""

import pytest
import torch

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def model() -> RANet:
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=2)).cuda()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_channels_last_training_step(model: RANet, dtype: torch.dtype) -> None:
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(8, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,), device="cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    with torch.autocast("cuda", dtype=dtype):
        loss = adanet.MultiExitLoss()(model(x), y)
    scaler.scale(loss).backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_early_exit_matches_simulation_on_cuda(model: RANet) -> None:
    model.eval()
    x = torch.randn(64, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        logits = torch.stack(model(x))
    policy = EarlyExitPolicy.calibrate(logits, adanet.geometric_exit_fractions(1.0, 3))
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        adanet.early_exit(model, x, policy)  # runs under autocast
    result = adanet.early_exit(model, x, policy)
    assert result.logits.device.type == "cuda"
    assert torch.equal(result.exit_index, policy.simulate(logits))
    chosen = logits[result.exit_index, torch.arange(64, device="cuda")]
    torch.testing.assert_close(result.logits, chosen, rtol=1e-4, atol=1e-4)


def test_optimized_model_on_cuda_uses_channels_last(model: RANet) -> None:
    optimized = adanet.optimize_for_inference(model.eval())
    conv = next(m for m in optimized.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        for a, b in zip(optimized(x), model(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
