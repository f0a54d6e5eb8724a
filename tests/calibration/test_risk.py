"""Tests for adanet.calibration.risk: the guarantees hold over random calibration/test splits, the
guaranteed policies still save cost, and the p-value and argument checks are right."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from adanet.calibration.risk import calibrate_risk, default_candidates, hoeffding_bentkus_pvalue

COSTS = [1.0, 2.0, 3.0, 4.0, 5.0]
EPS, DELTA, SPLITS = 0.02, 0.1, 500


def easy_early_data(num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
    """Five exits of growing strength; per-sample ease makes many samples right (and confident)
    already at the first exits, as in a trained early-exit network."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 10, (num_samples,), generator=gen)
    onehot = torch.nn.functional.one_hot(targets, 10).float()
    ease = torch.rand(num_samples, generator=gen) * 3.0
    strength = torch.tensor([0.8, 1.2, 1.6, 2.0, 2.4]).view(5, 1, 1)
    noise = torch.randn(5, num_samples, 10, generator=gen)
    return 2.0 * (noise + strength * ease.view(1, -1, 1) * onehot), targets


@pytest.fixture(scope="module")
def data() -> tuple[Tensor, Tensor]:
    return easy_early_data(2000, seed=0)


def split_outcomes(
    logits: Tensor, targets: Tensor, method: str, splits: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Test accuracy drop and mean cost of ``method``'s policy over random half splits."""
    num = logits.shape[1]
    gen = torch.Generator().manual_seed(seed)
    # The test halves are scored vectorised: a shared threshold lam sends sample i out at the
    # first exit whose running-max confidence reaches lam.
    reach = torch.softmax(logits, dim=2).amax(dim=2)[:-1].cummax(dim=0).values
    right = (logits.argmax(dim=2) == targets).double()
    costs = torch.tensor(COSTS, dtype=torch.float64)
    lams, tests = [], []
    for _ in range(splits):
        order = torch.randperm(num, generator=gen)
        cal, test = order[: num // 2], order[num // 2 :]
        policy = calibrate_risk(
            logits[:, cal],
            targets[cal],
            max_accuracy_drop=EPS,
            delta=DELTA,
            method=method,
            costs=COSTS,
        )
        assert set(policy.thresholds[:-1]) == {policy.thresholds[0]}  # one shared threshold
        lams.append(policy.thresholds[0])
        tests.append(test)
    test_index = torch.stack(tests)  # [splits, n_test]
    lam = torch.tensor(lams, dtype=torch.float64).view(-1, 1, 1)
    exits = (reach.double()[:, test_index].permute(1, 0, 2) < lam).sum(dim=1)  # [splits, n_test]
    chosen = right[exits, test_index]
    drop = right[-1, test_index].mean(dim=1) - chosen.mean(dim=1)
    return drop, costs[exits].mean(dim=1)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ltt", "crc"])
def test_guarantee_holds_over_random_splits(data: tuple[Tensor, Tensor], method: str) -> None:
    logits, targets = data
    drop, cost = split_outcomes(logits, targets, method, SPLITS, seed=1)
    if method == "ltt":
        # P(drop > eps) <= delta, plus two binomial standard errors for 500 splits.
        allowance = 2 * math.sqrt(DELTA * (1 - DELTA) / SPLITS)
        assert float((drop > EPS).double().mean()) <= DELTA + allowance
    else:
        assert float(drop.mean()) <= EPS + 0.002
    # ...and still saves at least 20% of the last exit's cost on average.
    assert float(cost.mean()) <= 0.8 * COSTS[-1], float(cost.mean())


def test_naive_is_cheaper_and_violates_more(data: tuple[Tensor, Tensor]) -> None:
    logits, targets = data
    naive_drop, naive_cost = split_outcomes(logits, targets, "naive", 60, seed=2)
    ltt_drop, ltt_cost = split_outcomes(logits, targets, "ltt", 60, seed=2)
    assert float(naive_cost.mean()) < float(ltt_cost.mean())
    assert float((naive_drop > EPS).double().mean()) > float((ltt_drop > EPS).double().mean())


def test_calibrate_risk_agrees_with_a_brute_force_search(data: tuple[Tensor, Tensor]) -> None:
    logits, targets = data[0][:, :300], data[1][:300]
    grid = [k / 50 for k in range(51)]
    conf = torch.softmax(logits, dim=2).amax(dim=2)
    right = logits.argmax(dim=2) == targets
    n = 300

    def empirical(lam: float, signed: bool) -> float:
        exits = [next((k for k in range(4) if conf[k, i] >= lam), 4) for i in range(n)]
        losses = [int(right[4, i]) - int(right[exits[i], i]) for i in range(n)]
        return sum(x if signed else max(x, 0) for x in losses) / n

    # naive: the smallest threshold whose signed empirical drop is within eps.
    naive = calibrate_risk(logits, targets, max_accuracy_drop=0.05, method="naive", candidates=grid)
    want = min((lam for lam in grid if empirical(lam, True) <= 0.05), default=math.inf)
    assert naive.thresholds[0] == want
    # ltt: walk down from the top while the Hoeffding-Bentkus p-value rejects.
    ltt = calibrate_risk(
        logits, targets, max_accuracy_drop=0.05, delta=0.1, method="ltt", candidates=grid
    )
    chosen = math.inf
    for lam in reversed(grid):
        p = float(hoeffding_bentkus_pvalue(torch.tensor(empirical(lam, False) * n), n, 0.05))
        if p > 0.1:
            break
        chosen = lam
    assert ltt.thresholds[0] == chosen


def test_agreement_with_the_last_exit_needs_no_labels(data: tuple[Tensor, Tensor]) -> None:
    logits = data[0][:, :500]
    policy = calibrate_risk(logits, None, max_accuracy_drop=0.05, method="crc", against="last_exit")
    exits = policy.simulate(logits)
    assert int((exits < 4).sum()) > 0
    with pytest.raises(TypeError):
        calibrate_risk(logits, None, max_accuracy_drop=0.05, against="labels")


def test_policy_carries_temperatures_and_context(data: tuple[Tensor, Tensor]) -> None:
    logits, targets = data[0][:, :400], data[1][:400]
    temps = [2.0, 1.5, 1.2, 1.0, 1.0]
    policy = calibrate_risk(
        logits,
        targets,
        max_accuracy_drop=0.05,
        temperatures=temps,
        cost_convention="latency",
        input_size=32,
    )
    assert policy.temperatures == tuple(temps)
    assert (policy.num_classes, policy.cost_convention, policy.input_size) == (
        10,
        "latency",
        (32, 32),
    )


def test_hoeffding_bentkus_pvalue_by_hand() -> None:
    # Zero losses out of 100 at alpha 0.1: Hoeffding gives 0.9**100, Bentkus e * 0.9**100.
    p = hoeffding_bentkus_pvalue(torch.tensor(0.0), 100, 0.1)
    assert float(p) == pytest.approx(0.9**100, rel=1e-9)
    # At or above alpha there is no evidence: p = 1.
    assert float(hoeffding_bentkus_pvalue(torch.tensor(30.0), 100, 0.1)) == 1.0
    grid = default_candidates()
    assert grid[0] == 0.0 and grid[-1] == math.inf and grid == sorted(grid)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_accuracy_drop": 0.0}, ValueError),
        ({"max_accuracy_drop": "0.02"}, TypeError),
        ({"delta": 1.5}, ValueError),
        ({"method": "bonferroni"}, ValueError),
        ({"against": "teacher"}, ValueError),
        ({"against": "consistency"}, ValueError),
        ({"costs": [1.0, math.nan, 3.0, 4.0, 5.0]}, ValueError),
        ({"measure": "patience"}, ValueError),
        ({"candidates": "0.5"}, TypeError),
    ],
)
def test_bad_arguments(data: tuple[Tensor, Tensor], kwargs: dict[str, object], error: type) -> None:
    args: dict[str, object] = {"max_accuracy_drop": 0.02}
    args.update(kwargs)
    with pytest.raises(error):
        calibrate_risk(data[0][:, :50], data[1][:50], **args)  # type: ignore[arg-type]
