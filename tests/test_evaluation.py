import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adanet import EarlyExitPolicy, RANet, RANetConfig, evaluate_anytime, evaluate_policy
from adanet.evaluation import anytime_records, topk_accuracy


def test_topk_accuracy_by_hand() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    targets = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, targets, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, targets, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(logits, targets, 5) == 1.0  # k capped at the 3 classes


def test_anytime_records_and_errors() -> None:
    logits = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    records = anytime_records(logits, torch.tensor([1, 0]), [10.0, 30.0])
    assert [(r.exit, r.macs, r.top1) for r in records] == [(0, 10.0, 0.5), (1, 30.0, 1.0)]
    with pytest.raises(ValueError, match="1 costs for 2 exits"):
        anytime_records(logits, torch.tensor([1, 0]), [1.0])
    with pytest.raises(ValueError, match="do not match 2 samples"):
        anytime_records(logits, torch.tensor([1, 0, 1]), [1.0, 2.0])


@pytest.fixture(scope="module")
def model_and_loader() -> tuple[RANet, DataLoader]:
    torch.manual_seed(0)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4))
    x, y = torch.randn(24, 3, 32, 32), torch.randint(0, 4, (24,))
    return model, DataLoader(TensorDataset(x, y), batch_size=10)


def test_evaluate_anytime_in_one_pass(model_and_loader: tuple[RANet, DataLoader]) -> None:
    model, loader = model_and_loader
    model.train()
    result = evaluate_anytime(model, loader)
    assert model.training  # restored
    x, y = loader.dataset.tensors  # type: ignore[attr-defined]
    model.eval()
    with torch.no_grad():
        expected = torch.stack(model(x))
    torch.testing.assert_close(result.logits, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(result.targets, y)
    for record in result.records:
        assert record.top1 == pytest.approx(topk_accuracy(expected[record.exit], y, 1))
    macs = [r.macs for r in result.records]
    assert macs == sorted(macs)


def test_evaluate_policy_matches_simulation(
    model_and_loader: tuple[RANet, DataLoader],
) -> None:
    model, loader = model_and_loader
    anytime = evaluate_anytime(model, loader)
    policy = EarlyExitPolicy.calibrate(
        anytime.logits, [0.5] + [0.0] * (model.num_exits - 2) + [0.5]
    )
    run = evaluate_policy(model, loader, policy)
    exits = policy.simulate(anytime.logits)
    chosen = anytime.logits[exits, torch.arange(exits.numel())]
    assert run.accuracy == pytest.approx(topk_accuracy(chosen, anytime.targets, 1))
    assert run.num_samples == 24 and sum(run.exit_fractions) == pytest.approx(1.0)
    assert run.exit_fractions[0] == pytest.approx(0.5)
    costs = [r.macs for r in anytime.records]
    assert run.mean_cost == pytest.approx(sum(costs[int(e)] for e in exits) / 24)
    assert run.seconds_per_image > 0


def test_empty_loader() -> None:
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    with pytest.raises(ValueError, match="no batches"):
        evaluate_anytime(model, [])
