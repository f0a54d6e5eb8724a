"""Shape buckets are invisible: padding never changes a real sample's logits, exit or cost,
never reaches the policy (its state included), and is not counted in the exit shares.

Each network runs the same batch with ``buckets="exact"`` (no padding) and with padding
schemes that put the stages on more rows than there are samples. The policies' thresholds
sit midway between two samples' confidences, so a rounding difference between two batch
sizes cannot move a sample across a threshold and the exits must agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import EarlyExitNetwork, EarlyExitPolicy, PatienceExitPolicy
from adanet.calibration import calibrate_shares
from adanet.inference import SizeBuckets
from conftest import load_example

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]

BATCH = 37  # not a bucket size: the first compaction pads
SCHEMES = ["auto", "pow2", 8, [5, 12, 20, 30]]


def _randomise_norms(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(
                    0.1 * torch.randn(module.num_features, generator=generator)
                )
                module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator))
            if isinstance(module, nn.Linear):  # spread the logits so confidences vary
                module.weight.mul_(6.0)


def _ranet() -> EarlyExitNetwork:
    config = adanet.RANetConfig(num_blocks=2, block_step=1, num_channels=8, growth_rate=4, step=1)
    return adanet.RANet(config)


def _msdnet() -> EarlyExitNetwork:
    config = adanet.MSDNetConfig(num_blocks=4, base=1, step=1, num_channels=4, growth_rate=4)
    return adanet.MSDNet(config)


def _custom() -> EarlyExitNetwork:
    network: EarlyExitNetwork = load_example("custom_network").TinyMultiScaleNet(num_classes=10)
    return network


def _optimized_ranet() -> EarlyExitNetwork:
    model = _ranet()
    _randomise_norms(model)
    return adanet.optimize_for_inference(model.eval())


NETWORKS: dict[str, Callable[[], EarlyExitNetwork]] = {
    "ranet": _ranet,
    "msdnet": _msdnet,
    "custom_network_example": _custom,
    "optimized_ranet": _optimized_ranet,
}


def _prepared(name: str) -> tuple[EarlyExitNetwork, Tensor, Tensor]:
    torch.manual_seed(0)
    model = NETWORKS[name]()
    if name != "optimized_ranet":
        _randomise_norms(model)
    model.eval()
    x = torch.randn(BATCH, model.in_channels, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = torch.stack(model(x))
    return model, x, logits


def margin_policy(logits: Tensor, shares: list[float]) -> EarlyExitPolicy:
    """Calibrated thresholds moved to the middle of the gap below them: every sample's
    confidence is at least half that gap away from every threshold."""
    policy = calibrate_shares(logits, shares)
    confidence = logits.softmax(-1).amax(-1)  # [exits, N]
    thresholds = list(policy.thresholds)
    for k, threshold in enumerate(thresholds[:-1]):
        below = confidence[k][confidence[k] < threshold]
        if torch.isfinite(torch.tensor(threshold)) and below.numel():
            thresholds[k] = (float(below.max()) + threshold) / 2
    return EarlyExitPolicy(thresholds)


def _spread(num_exits: int) -> list[float]:
    shares = [0.3] + [0.5 / (num_exits - 2)] * (num_exits - 2) + [0.2]
    return [share / sum(shares) for share in shares]


def _assert_invisible(exact: adanet.EarlyExitResult, padded: adanet.EarlyExitResult) -> None:
    assert torch.equal(padded.exit_index, exact.exit_index)
    assert torch.equal(padded.cost, exact.cost)
    torch.testing.assert_close(padded.logits, exact.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_padding_never_changes_a_real_sample(name: str, scheme: Any) -> None:
    model, x, logits = _prepared(name)
    policy = margin_policy(logits, _spread(model.num_exits))
    exact = adanet.early_exit(model, x, policy, buckets="exact")
    assert len(set(exact.exit_index.tolist())) >= 3  # several exits, several compactions
    padded = adanet.early_exit(model, x, policy, buckets=scheme)
    _assert_invisible(exact, padded)
    assert padded.exit_fractions(model.num_exits) == exact.exit_fractions(model.num_exits)
    # And both are the all-exit forward's logits at each sample's exit.
    chosen = logits[exact.exit_index, torch.arange(BATCH)]
    torch.testing.assert_close(padded.logits, chosen, rtol=1e-4, atol=1e-4)


class _Watching:
    """A threshold policy that records the logits and state every ``step`` is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.num_exits = inner.num_exits
        self.seen: list[tuple[int, Tensor, Any]] = []

    def initial_state(self, batch_size: int, device: Any = None) -> Any:
        return self.inner.initial_state(batch_size, device)

    def step(self, exit_index: int, logits: Tensor, state: Any) -> tuple[Tensor, Any]:
        self.seen.append((exit_index, logits.clone(), state))
        result: tuple[Tensor, Any] = self.inner.step(exit_index, logits, state)
        return result

    def simulate(self, logits: Any) -> Tensor:
        out: Tensor = self.inner.simulate(logits)
        return out


@pytest.mark.parametrize("name", ["ranet", "msdnet"])
def test_the_policy_sees_exactly_the_real_samples(name: str) -> None:
    model, x, logits = _prepared(name)
    inner = margin_policy(logits, _spread(model.num_exits))
    watching = _Watching(inner)
    result = adanet.early_exit(model, x, watching, buckets="pow2")
    for k, seen, _ in watching.seen:
        still_in = (result.exit_index >= k).nonzero().flatten()
        # One row per sample still in, in input order: no padding row, no sample twice.
        assert seen.shape[0] == still_in.numel(), f"exit {k}: {seen.shape[0]} rows"
        torch.testing.assert_close(seen, logits[k, still_in], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scheme", ["pow2", "auto"])
def test_patience_state_is_not_disturbed_by_padding(scheme: str) -> None:
    model, x, logits = _prepared("ranet")
    policy = PatienceExitPolicy(2, model.num_exits)
    watching = _Watching(policy)
    exact = adanet.early_exit(model, x, policy, buckets="exact")
    padded = adanet.early_exit(model, x, watching, buckets=scheme)
    _assert_invisible(exact, padded)
    assert torch.equal(padded.exit_index, policy.simulate(logits))
    for k, seen, state in watching.seen:
        for value in state.values() if isinstance(state, dict) else ():
            if isinstance(value, Tensor):  # the carried state holds the real samples only
                assert value.shape[0] == seen.shape[0], f"exit {k}: state of {value.shape[0]}"


def test_the_stages_run_on_bucket_sizes_only() -> None:
    model, x, logits = _prepared("ranet")
    policy = margin_policy(logits, _spread(model.num_exits))
    sizes: list[int] = []
    advance = model.advance

    def recording(state: Any, exit_index: int) -> Any:
        feature, after = advance(state, exit_index)
        sizes.append(int(feature.shape[0]))
        return feature, after

    costs = [float(k + 1) for k in range(model.num_exits)]  # nothing else runs the model
    model.advance = recording  # type: ignore[method-assign]
    try:
        adanet.early_exit(model, x, policy, buckets="pow2", costs=costs)
    finally:
        del model.advance
    allowed = set(SizeBuckets.parse("pow2").sizes_up_to(BATCH))
    assert sizes[0] == BATCH and set(sizes) <= allowed, sizes
    assert len(sizes) == model.num_exits and len(set(sizes)) >= 2


def test_bad_buckets_are_refused() -> None:
    model, x, logits = _prepared("ranet")
    policy = margin_policy(logits, _spread(model.num_exits))
    with pytest.raises(ValueError, match="buckets must be one of"):
        adanet.early_exit(model, x, policy, buckets="fast")
