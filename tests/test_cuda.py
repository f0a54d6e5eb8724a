"""CUDA paths: skipped without a GPU, run whenever one is available."""

from collections.abc import Iterator

import pytest
import torch

import adanet
from adanet import RANet, RANetConfig
from adanet.calibration import calibrate_shares
from decision_margin import assert_same_decisions, chosen_logits

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# bf16 keeps 8 significant bits: each rounding is off by at most 2^-8 (0.4%) relative. The
# deepest exit of the model below runs about 20 convolutions, each output rounded to bf16
# (cuDNN accumulates in fp32, so rounding happens once per layer, not once per MAC). Errors of
# independent roundings add up like a random walk, about sqrt(20) * 2^-8 = 1.7% of the logit
# scale, and 20 * 2^-8 = 8% if every rounding went the same way. 5% of max|logits| sits
# between the typical and the worst case (bf16 autocast on a CPU gave 1.0% for this test).
BF16_LOGIT_TOLERANCE = 0.05
# A decision can only flip for a sample whose confidence is within the bf16 error of its exit's
# threshold; with thresholds at quantiles of 256 samples that is a few samples (4 of 256 with
# bf16 autocast on a CPU). Allow 5%.
BF16_MAX_FLIPPED_DECISIONS = 0.05


@pytest.fixture
def model() -> RANet:
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=2)).cuda()


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """fp32 reference runs without TF32 (10-bit mantissas) in convolutions and matmuls."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = conv
        torch.backends.cuda.matmul.allow_tf32 = matmul


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_channels_last_training_step(model: RANet, dtype: torch.dtype) -> None:
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(8, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,), device="cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    with torch.autocast("cuda", dtype=dtype):
        loss = adanet.training.MultiExitLoss()(model(x), y)
    scaler.scale(loss).backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(
    model: RANet, dtype: torch.dtype
) -> None:
    model.train()
    generator = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(32, 3, 32, 32, device="cuda", generator=generator)
    y = torch.randint(0, 10, (32,), device="cuda", generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    loss_fn = adanet.training.MultiExitLoss()
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=dtype):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # fp16: skips the first steps if their gradients overflow
        scaler.update()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    # Thirty steps on one batch of 32 images must fit it noticeably: the summed loss of the
    # exits (about 3 * ln 10 = 6.9 at the start) at least halves.
    assert losses[-1] < 0.5 * losses[0], losses


def test_bf16_early_exit_agrees_with_fp32(model: RANet, exact_fp32: None) -> None:
    model.eval()
    generator = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(256, 3, 32, 32, device="cuda", generator=generator)
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    with torch.inference_mode():
        logits = torch.stack(model(x)).float()  # [exits, N, classes], fp32
    policy = calibrate_shares(logits, adanet.geometric_exit_fractions(1.0, 3))
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        result = adanet.early_exit(model, x, policy, costs=costs)
    assert result.logits.device.type == "cuda"
    expected_exits = policy.simulate(logits)
    flipped = float((result.exit_index != expected_exits).double().mean())
    assert flipped <= BF16_MAX_FLIPPED_DECISIONS, f"{flipped:.1%} of the decisions differ"
    # Each sample's bf16 logits against the fp32 logits of the exit it left at.
    n = torch.arange(len(x), device="cuda")
    reference = logits[result.exit_index, n]
    scale = logits.abs().amax(dim=(1, 2))[result.exit_index]  # max|logits| of that exit
    error = (result.logits.float() - reference).abs().amax(dim=1) / scale
    assert float(error.max()) <= BF16_LOGIT_TOLERANCE, float(error.max())


def test_early_exit_matches_simulation_on_cuda(model: RANet, exact_fp32: None) -> None:
    model.eval()
    x = torch.randn(64, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        logits = torch.stack(model(x))
    policy = calibrate_shares(logits, adanet.geometric_exit_fractions(1.0, 3))
    result = adanet.early_exit(model, x, policy)
    assert result.logits.device.type == "cuda"
    assert_same_decisions(result.exit_index, policy, logits)
    chosen = chosen_logits(logits, result.exit_index)
    torch.testing.assert_close(result.logits, chosen, rtol=1e-4, atol=1e-4)


def test_optimized_model_on_cuda_uses_channels_last(model: RANet) -> None:
    optimized = adanet.optimize_for_inference(model.eval())
    conv = next(m for m in optimized.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        for a, b in zip(optimized(x), model(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
