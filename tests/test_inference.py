from pathlib import Path

import pytest
import torch

import adanet
from adanet import EarlyExitResult, RANet, RANetConfig, early_exit, measure_exit_costs
from adanet.policy import EarlyExitPolicy

INF = float("inf")


@pytest.fixture(scope="module")
def reference_model(reference_dir: Path) -> RANet:
    config = RANetConfig.from_reference_args(reference_dir / "ranet" / "cifar10.args.txt")
    model = RANet(config)
    adanet.load_reference_checkpoint(model, reference_dir / "ranet" / "cifar10.pth.tar")
    return model.eval()


@pytest.fixture(scope="module")
def batch_and_logits(reference_model: RANet) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 32, 32, generator=generator)
    with torch.no_grad():
        logits = torch.stack(reference_model(x))  # [exits, N, classes]
    return x, logits


def _check_against_simulation(
    model: RANet, x: torch.Tensor, logits: torch.Tensor, policy: EarlyExitPolicy
) -> EarlyExitResult:
    result = early_exit(model, x, policy)
    simulated = policy.simulate(logits)
    assert torch.equal(result.exit_index, simulated)
    chosen = logits[simulated, torch.arange(x.shape[0])]
    scale = chosen.abs().max()
    assert ((result.logits - chosen).abs().max() / scale).item() < 1e-4
    return result


def test_calibrated_sixty_percent_leave_at_the_first_exit(
    reference_model: RANet, batch_and_logits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, logits = batch_and_logits
    fractions = [0.6] + [0.0] * 6 + [0.4]
    policy = EarlyExitPolicy.calibrate(logits, exit_fractions=fractions)
    result = _check_against_simulation(reference_model, x, logits, policy)
    shares = result.exit_fractions(8)
    assert shares[0] == pytest.approx(0.6, abs=1 / 256)
    assert shares[0] + shares[-1] == pytest.approx(1.0)
    costs = torch.tensor([c.macs for c in measure_exit_costs(reference_model, 32)])
    assert torch.equal(result.cost, costs.double()[result.exit_index])


@pytest.mark.parametrize("measure", ["max_prob", "entropy", "margin"])
def test_geometric_policies_equal_simulation(
    reference_model: RANet,
    batch_and_logits: tuple[torch.Tensor, torch.Tensor],
    measure: str,
) -> None:
    x, logits = batch_and_logits
    fractions = adanet.policy.geometric_exit_fractions(1.2, 8)
    policy = EarlyExitPolicy.calibrate(logits, exit_fractions=fractions, measure=measure)
    result = _check_against_simulation(reference_model, x, logits, policy)
    assert len(set(result.exit_index.tolist())) > 3  # samples really spread over exits


def test_patience_policy_equals_simulation(
    reference_model: RANet, batch_and_logits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, logits = batch_and_logits
    _check_against_simulation(reference_model, x, logits, EarlyExitPolicy.with_patience(2, 8))


def test_everybody_at_the_first_or_the_last_exit(
    reference_model: RANet, batch_and_logits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, logits = batch_and_logits
    first = early_exit(reference_model, x[:16], EarlyExitPolicy([-INF] * 8))
    assert torch.equal(first.exit_index, torch.zeros(16, dtype=torch.long))
    torch.testing.assert_close(first.logits, logits[0, :16], rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        last = early_exit(reference_model, x[:16], EarlyExitPolicy([INF] * 8))
    assert torch.equal(last.exit_index, torch.full((16,), 7))
    torch.testing.assert_close(last.logits, logits[-1, :16], rtol=1e-4, atol=1e-4)


def test_custom_costs_and_errors() -> None:
    model = RANet(RANetConfig()).eval()
    x = torch.randn(4, 3, 32, 32)
    policy = EarlyExitPolicy([-INF] * model.num_exits)
    result = early_exit(model, x, policy, costs=list(range(1, model.num_exits + 1)))
    assert result.cost.tolist() == [1.0] * 4 and result.mean_cost == 1.0
    with pytest.raises(ValueError, match="costs has 2 entries"):
        early_exit(model, x, policy, costs=[1.0, 2.0])
    with pytest.raises(ValueError, match="the policy has 3 thresholds but the model has 6"):
        early_exit(model, x, EarlyExitPolicy([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="too small"):
        early_exit(model, torch.randn(4, 3, 8, 8), policy)
    with pytest.raises(RuntimeError, match="eval mode"):
        early_exit(model.train(), x, policy)
