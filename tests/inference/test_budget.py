"""The hard per-batch budget: ``early_exit(..., budget=B)`` never spends more than ``B``."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch

from adanet import (
    EarlyExitPolicy,
    PatienceExitPolicy,
    RANet,
    RANetConfig,
    early_exit,
    measure_exit_costs,
)
from adanet.calibration import OnlineController, calibrate_shares, geometric_exit_fractions
from adanet.inference import simulate_with_budget
from adanet.inference.budget import (
    BudgetGuard,
    check_budget,
    enforce_budget,
    leave_priority,
    staying_allowance,
)
from adanet.policies import exit_confidences
from replay_network import ReplayNetwork
from synthetic_logits import make_logits


class EveryOtherLeaves:
    """A policy of its own: odd input positions leave at exit 0, the rest go to the end."""

    def __init__(self, num_exits: int) -> None:
        self.num_exits = num_exits

    def initial_state(self, batch_size: int, device: Any = None) -> dict[str, torch.Tensor]:
        return {"odd": torch.arange(batch_size, device=device) % 2 == 1}

    def step(self, exit_index: int, logits: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return state["odd"] & (exit_index == 0), state

    def simulate(self, logits: torch.Tensor) -> torch.Tensor:
        n = logits.shape[1]
        odd = torch.arange(n) % 2 == 1
        return torch.where(odd, 0, logits.shape[0] - 1)


# ----------------------------------------------------------------------------- the pure rule


def test_allowance_is_what_the_budget_left_divided_by_the_next_step() -> None:
    costs = [1.0, 3.0, 4.0]
    # 10 samples at exit 0 have paid 10; 7 more are left, 2 per sample to reach exit 1.
    assert staying_allowance(10, 0.0, costs, 0, 17.0) == 3
    assert staying_allowance(10, 0.0, costs, 0, 10.0) == 0
    assert staying_allowance(10, 0.0, costs, 0, 1000.0) == 10
    # 4 samples left at exit 0 earlier (cost 4); 6 at exit 1 have paid 18: 22 committed.
    assert staying_allowance(6, 4.0, costs, 1, 25.0) == 3
    # A free next exit never limits anybody.
    assert staying_allowance(5, 0.0, [1.0, 1.0, 2.0], 0, 5.0) == 5


def test_allowance_never_overshoots_with_rounding_costs() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        costs = sorted(rng.uniform(0.0, 1.0) / 3.0 for _ in range(3))
        n = rng.randint(1, 50)
        spent = rng.uniform(0.0, 2.0)
        budget = spent + n * costs[0] + rng.uniform(0.0, n * (costs[1] - costs[0]) * 1.2)
        allowed = staying_allowance(n, spent, costs, 0, budget)
        assert 0 <= allowed <= n
        assert spent + n * costs[0] + allowed * (costs[1] - costs[0]) <= budget


def test_forced_out_are_the_most_confident_of_those_staying() -> None:
    priority = torch.tensor([0.9, 0.2, 0.8, 0.5, 0.95, 0.5, 0.1])
    leaving = torch.tensor([True, False, False, False, False, False, False])
    # Exit costs 1 -> 2: after 7 at exit 0 (7 paid), a budget of 11 lets 4 of the 6 stay.
    out = enforce_budget(priority, leaving, spent=0.0, costs=[1.0, 2.0], exit_index=0, budget=11)
    assert out.tolist() == [True, False, True, False, True, False, False]
    # With 3 allowed, one of the two 0.5s must go too: ties go to the earlier sample.
    out = enforce_budget(priority, leaving, spent=0.0, costs=[1.0, 2.0], exit_index=0, budget=10)
    assert out.tolist() == [True, False, True, True, True, False, False]
    # A budget that carries everybody who stays returns the policy's mask itself.
    same = enforce_budget(priority, leaving, spent=0.0, costs=[1.0, 2.0], exit_index=0, budget=13)
    assert same is leaving


def test_nan_priority_is_forced_out_last() -> None:
    priority = torch.tensor([float("nan"), 0.3, 0.4])
    leaving = torch.zeros(3, dtype=torch.bool)
    out = enforce_budget(priority, leaving, spent=0.0, costs=[1.0, 2.0], exit_index=0, budget=4)
    assert out.tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("budget", "error"),
    [(True, TypeError), ("10", TypeError), (float("nan"), ValueError), (-1.0, ValueError)],
)
def test_bad_budgets_are_refused(budget: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="budget"):
        check_budget(budget)


def test_scalar_tensor_and_infinite_budgets_are_accepted() -> None:
    assert check_budget(torch.tensor(5)) == 5.0
    assert check_budget(math.inf) == math.inf


def test_priority_follows_each_policy_s_measure() -> None:
    logits = make_logits(3, 20, seed=4)
    policy = EarlyExitPolicy([0.5, 0.5, -math.inf], "margin", temperatures=[2.0, 1.0, 1.0])
    expected = exit_confidences(logits[0], "margin", 2.0)
    torch.testing.assert_close(leave_priority(policy, 0, logits[0], {}), expected)
    patience = PatienceExitPolicy(2, 3)
    _, state = patience.step(0, logits[0], patience.initial_state(20))
    _, state = patience.step(1, logits[1], state)
    score = leave_priority(patience, 1, logits[1], state)
    # A longer streak always outranks a shorter one, whatever the probabilities.
    longer = state["streak"].unsqueeze(1) > state["streak"].unsqueeze(0)
    assert bool((score.unsqueeze(1) > score.unsqueeze(0))[longer].all())
    other = EveryOtherLeaves(3)
    expected = exit_confidences(logits[0], "max_prob")
    torch.testing.assert_close(leave_priority(other, 0, logits[0], {}), expected)


# ----------------------------------------------------------------------------- early_exit


def test_a_budget_below_everybody_s_first_exit_is_refused() -> None:
    logits = make_logits(3, 8, seed=1)
    network = ReplayNetwork(logits, [10.0, 20.0, 30.0]).eval()
    policy = EarlyExitPolicy([math.inf, math.inf, -math.inf])
    with pytest.raises(ValueError, match=r"cannot pay the first exit of all 8 images"):
        early_exit(network, network.images(range(8)), policy, budget=79.0)
    # Exactly the first exit for everybody is enough: everybody leaves there.
    result = early_exit(network, network.images(range(8)), policy, budget=80.0)
    assert result.exit_index.tolist() == [0] * 8 and float(result.cost.sum()) == 80.0
    with pytest.raises(ValueError, match="cannot pay"):
        BudgetGuard(policy, [10.0, 20.0, 30.0], 5.0, 1)


def test_the_least_confident_are_the_ones_carried_on() -> None:
    logits = make_logits(2, 30, seed=7)
    network = ReplayNetwork(logits, [1.0, 4.0]).eval()
    policy = EarlyExitPolicy([math.inf, -math.inf])  # everybody would go to the last exit
    # 30 paid at exit 0; 3 per sample to go on: a budget of 45 carries 5 of them.
    result = early_exit(network, network.images(range(30)), policy, budget=45.0)
    carried = torch.nonzero(result.exit_index == 1).flatten()
    least = torch.argsort(exit_confidences(logits[0], "max_prob"))[:5]
    assert sorted(carried.tolist()) == sorted(least.tolist())
    assert float(result.cost.sum()) == 45.0


def _random_policy(rng: random.Random, calibration: torch.Tensor) -> Any:
    num_exits = calibration.shape[0]
    kind = rng.choice(["shares", "temperature", "patience", "own", "controller"])
    if kind == "shares":
        fractions = geometric_exit_fractions(rng.uniform(0.3, 3.0), num_exits)
        return calibrate_shares(calibration, fractions, measure=rng.choice(["max_prob", "margin"]))
    if kind == "temperature":
        temps = [rng.uniform(0.5, 2.0) for _ in range(num_exits)]
        fractions = geometric_exit_fractions(rng.uniform(0.3, 3.0), num_exits)
        return calibrate_shares(calibration, fractions, measure="entropy", temperatures=temps)
    if kind == "patience":
        return PatienceExitPolicy(rng.randint(1, num_exits), num_exits)
    if kind == "own":
        return EveryOtherLeaves(num_exits)
    costs = [float(k + 1) for k in range(num_exits)]
    if rng.random() < 0.5:
        return OnlineController(calibration, costs, target_cost=rng.uniform(1.0, num_exits))
    return OnlineController(calibration, costs, max_accuracy_drop=0.05, audit_share=0.3)


def _random_costs(rng: random.Random, num_exits: int) -> list[float]:
    # Some steps are 0 (a free exit) or repeat, most are arbitrary.
    steps = [
        rng.choice([0.0, 1.0, 2.5]) if rng.random() < 0.3 else rng.random() * 9.0
        for _ in range(num_exits)
    ]
    values = [sum(steps[: k + 1]) + 0.5 for k in range(num_exits)]
    if rng.random() < 0.5:  # integer MAC counts, where every sum is exact
        values = [float(round(v * 1000)) for v in values]
    return values


@pytest.mark.parametrize("seed", range(12))
def test_spend_never_exceeds_the_budget_property(seed: int) -> None:
    """Random networks, policies, costs and budgets: spent <= B on every batch; a budget the
    run fits in changes nothing; the replay from logits decides exactly as early exit."""
    rng = random.Random(seed)
    bound = 0
    for _ in range(6):
        num_exits, n = rng.randint(2, 6), rng.randint(1, 48)
        logits = make_logits(num_exits, n, seed=rng.randint(0, 10**6), quantum=0.5)
        calibration = make_logits(num_exits, 200, seed=rng.randint(0, 10**6))
        costs = _random_costs(rng, num_exits)
        network = ReplayNetwork(logits, costs).eval()
        policy = _random_policy(rng, calibration)
        x = network.images(range(n))
        plain = early_exit(network, x, _fresh(policy), costs=costs)
        free = float(plain.cost.sum())
        integer = all(c == round(c) for c in costs)
        # The budget the run just fits in: exactly its spend when sums are exact (integer
        # costs); otherwise a hair above it, since the guard's sums round differently.
        fits = free if integer else free * (1 + 1e-9)
        low, high = n * costs[0], n * costs[-1]
        for budget in [low, free, fits, rng.uniform(low, high), rng.uniform(low, free), high]:
            result = early_exit(network, x, _fresh(policy), costs=costs, budget=budget)
            spent = float(result.cost.sum())
            # Integer costs are summed exactly; others may round in the last bits.
            assert spent <= budget * (1 + 1e-12), (policy, costs, budget, spent)
            replay = simulate_with_budget(_fresh(policy), logits, costs, budget)
            assert torch.equal(result.exit_index, replay)
            if budget >= fits:
                assert torch.equal(result.exit_index, plain.exit_index)
                assert torch.equal(result.logits, plain.logits)
            bound += not torch.equal(result.exit_index, plain.exit_index)
    assert bound > 0  # the budgets did bind, in some cases at least


def _fresh(policy: Any) -> Any:
    """The same policy in its initial state (a controller learns only in observe)."""
    if isinstance(policy, OnlineController):
        return OnlineController.from_dict(policy.to_dict())
    return policy


def test_a_real_network_stays_within_its_budget() -> None:
    torch.manual_seed(0)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1)).eval()
    x = torch.randn(24, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = torch.stack(model(x))
    policy = calibrate_shares(logits, [0.2, 0.2, 0.6])
    plain = early_exit(model, x, policy)
    first = measure_exit_costs(model, 32)[0].macs
    for share in (0.3, 0.5, 0.8):
        budget = max(float(plain.cost.sum()) * share, 24 * first)
        result = early_exit(model, x, policy, budget=budget)
        assert float(result.cost.sum()) <= budget  # integer MAC counts: no rounding
    assert torch.equal(early_exit(model, x, policy, budget=1e30).exit_index, plain.exit_index)
