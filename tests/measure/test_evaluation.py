import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig, evaluate_anytime, evaluate_policy
from adanet.calibration import calibrate_shares
from adanet.measure.evaluation import anytime_records, topk_accuracy
from adanet.measure.latency import latency_stats


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
    with pytest.raises(ValueError, match="costs has 1 entries but there are 2 exits"):
        anytime_records(logits, torch.tensor([1, 0]), [1.0])
    with pytest.raises(ValueError, match="3 samples"):
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
    policy = calibrate_shares(anytime.logits, [0.5] + [0.0] * (model.num_exits - 2) + [0.5])
    run = evaluate_policy(model, loader, policy)
    exits = policy.simulate(anytime.logits)
    chosen = anytime.logits[exits, torch.arange(exits.numel())]
    assert run.accuracy == pytest.approx(topk_accuracy(chosen, anytime.targets, 1))
    assert run.num_samples == 24 and sum(run.exit_fractions) == pytest.approx(1.0)
    assert run.exit_fractions[0] == pytest.approx(0.5)
    costs = [r.macs for r in anytime.records]
    assert run.mean_cost == pytest.approx(sum(costs[int(e)] for e in exits) / 24)
    assert run.seconds_per_image > 0
    # Latency of the policy and of both static baselines, from the same run: 3 batches, the
    # first of which warms up and is not timed.
    for stats in (run.latency, run.all_exits_latency, run.last_exit_latency):
        assert stats is not None and stats.num_batches == 2
        assert 0 < stats.p50_batch_seconds <= stats.p95_batch_seconds
        assert stats.images_per_second > 0
    quick = evaluate_policy(model, loader, policy, baselines=False, warmup_batches=0)
    assert quick.all_exits_latency is None and quick.last_exit_latency is None
    assert quick.latency is not None and quick.latency.num_batches == 3
    assert quick.accuracy == run.accuracy
    # Padding buckets change nothing that is scored.
    exact = evaluate_policy(model, loader, policy, buckets="exact")
    assert exact.exit_fractions == run.exit_fractions and exact.accuracy == run.accuracy


def test_evaluate_policy_times_nothing_it_used_to_warm_up(
    model_and_loader: tuple[RANet, DataLoader],
) -> None:
    model, loader = model_and_loader
    x, y = loader.dataset.tensors  # type: ignore[attr-defined]
    policy = EarlyExitPolicy([float("inf")] * model.num_exits)
    single = evaluate_policy(model, [(x, y)], policy)  # one batch: the warm-up only
    assert single.num_samples == 24 and single.accuracy >= 0
    assert math.isnan(single.seconds_per_image)
    assert single.latency is None and single.last_exit_latency is None
    with pytest.raises(ValueError, match="warmup_batches must be an int >= 0"):
        evaluate_policy(model, loader, policy, warmup_batches=-1)


def test_empty_loader() -> None:
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    with pytest.raises(ValueError, match="no batches"):
        evaluate_anytime(model, [])


@pytest.mark.parametrize(
    ("targets", "error"),
    [
        (torch.tensor([[1], [0]]), ValueError),  # [N, 1] would broadcast to an "accuracy" of 2
        (torch.tensor([1.0, 0.0]), TypeError),
        (torch.tensor([True, False]), TypeError),
        (torch.tensor([1, 2]), ValueError),  # class 2 of a 2-class problem
        (torch.tensor([-1, 0]), ValueError),
        ([1, 0], TypeError),
    ],
)
def test_targets_are_validated_everywhere(targets: object, error: type[Exception]) -> None:
    logits = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    with pytest.raises(error):
        anytime_records(logits, targets, [1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(error):
        topk_accuracy(logits[0], targets, 1)  # type: ignore[arg-type]
    with pytest.raises(error):
        adanet.calibration.fit_temperatures(logits, targets)  # type: ignore[arg-type]
    with pytest.raises(error):
        adanet.calibration.calibrate_risk(logits, targets, max_accuracy_drop=0.1)  # type: ignore[arg-type]


def test_loader_targets_are_validated(model_and_loader: tuple[RANet, DataLoader]) -> None:
    model, loader = model_and_loader
    x, y = loader.dataset.tensors  # type: ignore[attr-defined]
    policy = EarlyExitPolicy([math.inf] * model.num_exits)
    column = DataLoader(TensorDataset(x, y.view(-1, 1)), batch_size=10)
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        evaluate_policy(model, column, policy, baselines=False)
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        evaluate_anytime(model, column)
    floats = DataLoader(TensorDataset(x, y.float()), batch_size=10)
    with pytest.raises(TypeError, match="integer dtype"):
        evaluate_policy(model, floats, policy, baselines=False)
    too_big = DataLoader(TensorDataset(x, y + 4), batch_size=10)
    with pytest.raises(ValueError, match="outside"):
        evaluate_anytime(model, too_big)
    with pytest.raises(TypeError, match="ExitDecider"):
        evaluate_policy(model, loader, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes=100"):
        evaluate_policy(model, loader, EarlyExitPolicy([0.5] * model.num_exits, num_classes=100))
    with pytest.raises(ValueError, match="exits"):
        evaluate_policy(model, loader, EarlyExitPolicy([0.5] * (model.num_exits + 1)))


class FirstLogitGap:
    """Leaves at exit 0 when logit 0 beats logit 1 by ``gap``; nothing from adanet."""

    def __init__(self, num_exits: int, gap: float) -> None:
        self.num_exits = num_exits
        self.gap = gap

    def initial_state(self, batch_size: int, device: object = None) -> list[torch.Tensor]:
        return []

    def step(
        self, exit_index: int, logits: torch.Tensor, state: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        leave = logits[:, 0] - logits[:, 1] >= self.gap
        return leave if exit_index == 0 else torch.zeros_like(leave), state

    def simulate(self, logits: torch.Tensor) -> torch.Tensor:
        leave = logits[0, :, 0] - logits[0, :, 1] >= self.gap
        return torch.where(leave, 0, self.num_exits - 1)


def test_custom_policy_runs_through_evaluate_policy(
    model_and_loader: tuple[RANet, DataLoader],
) -> None:
    model, loader = model_and_loader
    anytime = evaluate_anytime(model, loader)
    gaps = anytime.logits[0, :, 0] - anytime.logits[0, :, 1]
    policy = FirstLogitGap(model.num_exits, float(gaps.median()))
    run = evaluate_policy(model, loader, policy, baselines=False)
    exits = policy.simulate(anytime.logits)
    counts = torch.bincount(exits, minlength=model.num_exits)
    assert run.exit_fractions == pytest.approx((counts / 24).tolist())
    assert 0 < counts[0] < 24  # both branches used
    chosen = anytime.logits[exits, torch.arange(24)]
    assert run.accuracy == pytest.approx(topk_accuracy(chosen, anytime.targets, 1))


def test_ece_per_exit_before_and_after_temperatures(
    model_and_loader: tuple[RANet, DataLoader],
) -> None:
    model, loader = model_and_loader
    plain = evaluate_anytime(model, loader)
    assert all(r.ece_scaled is None and 0.0 <= r.ece <= 1.0 for r in plain.records)
    temps = [2.0] * model.num_exits
    scaled = evaluate_anytime(model, loader, temperatures=temps)
    want = adanet.calibration.temperature.expected_calibration_error(
        plain.logits / 2.0, plain.targets
    )
    assert [r.ece_scaled for r in scaled.records] == pytest.approx(want)
    assert [r.ece for r in scaled.records] == pytest.approx([r.ece for r in plain.records])


def test_nan_logits_are_never_correct() -> None:
    logits = torch.tensor([[math.nan, 0.0], [1.0, 0.0]])
    assert topk_accuracy(logits, torch.tensor([0, 0]), 1) == 0.5


def test_latency_stats_by_hand() -> None:
    stats = latency_stats([0.4, 0.1, 0.2, 0.3], 8)
    assert stats.images_per_second == pytest.approx(8.0)
    assert stats.p50_batch_seconds == pytest.approx(0.25)
    assert stats.p95_batch_seconds == 0.4
    with pytest.raises(ValueError):
        latency_stats([], 1)
