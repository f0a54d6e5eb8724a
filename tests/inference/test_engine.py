"""``early_exit`` and ``run_to_exit`` (adanet.inference.engine): decisions equal to simulation
on the original RANet, costs, bad input, and the static run to one exit that runs no other
head and no later block."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import (
    EarlyExitResult,
    PatienceExitPolicy,
    RANet,
    RANetConfig,
    early_exit,
    measure_exit_costs,
)
from adanet.calibration import calibrate_shares
from adanet.compat import read_reference_config
from adanet.policies.threshold import EarlyExitPolicy
from decision_margin import assert_same_decisions, chosen_logits

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics

INF = float("inf")


@pytest.fixture(scope="module")
def reference_model(reference_dir: Path) -> RANet:
    config = read_reference_config(
        arch="RANet", path_or_text=reference_dir / "ranet" / "cifar10.args.txt"
    )
    model = RANet(config)
    adanet.compat.load_reference_checkpoint(model, reference_dir / "ranet" / "cifar10.pth.tar")
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
    assert_same_decisions(result.exit_index, policy, logits)
    chosen = chosen_logits(logits, result.exit_index)
    scale = chosen.abs().max()
    assert ((result.logits - chosen).abs().max() / scale).item() < 1e-4
    return result


def test_calibrated_sixty_percent_leave_at_the_first_exit(
    reference_model: RANet, batch_and_logits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, logits = batch_and_logits
    fractions = [0.6] + [0.0] * 6 + [0.4]
    policy = calibrate_shares(logits, exit_fractions=fractions)
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
    fractions = adanet.geometric_exit_fractions(1.2, 8)
    policy = calibrate_shares(logits, exit_fractions=fractions, measure=measure)
    result = _check_against_simulation(reference_model, x, logits, policy)
    assert len(set(result.exit_index.tolist())) > 3  # samples really spread over exits


def test_patience_policy_equals_simulation(
    reference_model: RANet, batch_and_logits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, logits = batch_and_logits
    _check_against_simulation(reference_model, x, logits, PatienceExitPolicy(2, 8))


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
    with pytest.raises(ValueError, match="the policy decides for 3 exits but the model has 6"):
        early_exit(model, x, EarlyExitPolicy([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="too small"):
        early_exit(model, torch.randn(4, 3, 8, 8), policy)
    with pytest.raises(RuntimeError, match="eval mode"):
        early_exit(model.train(), x, policy)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_model() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4)).eval()


def test_missing_or_wrong_policy_is_a_type_error(small_model: RANet) -> None:
    x = torch.randn(2, 3, 32, 32)
    for bad in (None, "max_prob", [0.5] * small_model.num_exits, object()):
        with pytest.raises(TypeError, match="ExitDecider"):
            early_exit(small_model, x, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "costs",
    [
        [math.nan, 1.0],
        [-1.0, 1.0],
        [1.0, math.inf],
        [2.0, 1.0],
        "12",
        [1.0, "2"],
    ],
)
def test_bad_costs_are_refused(small_model: RANet, costs: object) -> None:
    num_exits = small_model.num_exits
    full = list(costs) if isinstance(costs, list) else costs
    if isinstance(full, list):
        full = [0.5] * (num_exits - 2) + full
    policy = EarlyExitPolicy([INF] * num_exits)
    with pytest.raises((TypeError, ValueError), match="costs"):
        early_exit(small_model, torch.randn(2, 3, 32, 32), policy, costs=full)  # type: ignore[arg-type]


def test_a_cost_list_is_read_afresh_each_call(small_model: RANet) -> None:
    # Checked costs are remembered by value, so a list changed in place is read again, and a
    # bad list is refused even after a good one.
    n = small_model.num_exits
    policy = EarlyExitPolicy([INF] * n)  # everybody at the last exit
    x = torch.randn(3, 3, 32, 32)
    costs = [float(k + 1) for k in range(n)]
    assert early_exit(small_model, x, policy, costs=costs).cost.tolist() == [float(n)] * 3
    costs[-1] = 10.0
    assert early_exit(small_model, x, policy, costs=costs).cost.tolist() == [10.0] * 3
    costs[0] = math.nan
    with pytest.raises(ValueError, match="costs"):
        early_exit(small_model, x, policy, costs=costs)


class _NoPolicy:
    """Passes the protocol check once, then loses its number of exits."""

    def __init__(self, num_exits: object) -> None:
        self.num_exits = num_exits

    def initial_state(self, batch_size: int, device: object = None) -> dict[str, object]:
        return {}

    def step(self, exit_index: int, logits: torch.Tensor, state: object) -> object:
        return torch.ones(logits.shape[0], dtype=torch.bool), state

    def simulate(self, logits: object) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.long)


def test_a_policy_class_seen_before_is_still_checked(small_model: RANet) -> None:
    x = torch.randn(2, 3, 32, 32)
    costs = [1.0] * small_model.num_exits
    result = early_exit(small_model, x, _NoPolicy(small_model.num_exits), costs=costs)
    assert result.exit_index.tolist() == [0, 0]
    with pytest.raises(TypeError, match="num_exits must be an int"):
        early_exit(small_model, x, _NoPolicy("3"), costs=costs)  # type: ignore[arg-type]


def test_policy_for_another_model_is_refused(small_model: RANet) -> None:
    n = small_model.num_exits
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="num_classes=10"):
        early_exit(small_model, x, EarlyExitPolicy([INF] * n, num_classes=10))
    with pytest.raises(ValueError, match="input_size"):
        early_exit(small_model, x, EarlyExitPolicy([INF] * n, input_size=64))
    reference = EarlyExitPolicy([INF] * n, cost_convention="reference")
    with pytest.raises(ValueError, match="cost_convention"):
        early_exit(small_model, x, reference, convention="actual")
    # Without an explicit convention the recorded one is used.
    costs = torch.tensor(
        [c.macs for c in measure_exit_costs(small_model, 32, convention="reference")]
    )
    assert torch.equal(early_exit(small_model, x, reference).cost, costs.double()[[-1, -1]])
    fits = EarlyExitPolicy([INF] * n, num_classes=4, input_size=(3, 32, 32))
    assert early_exit(small_model, x, fits).exit_index.tolist() == [n - 1, n - 1]


def test_nan_images_go_to_the_last_exit_without_disturbing_others(small_model: RANet) -> None:
    n = small_model.num_exits
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        logits = torch.stack(small_model(x))
    policy = calibrate_shares(logits, [0.5] + [0.0] * (n - 2) + [0.5])
    clean = early_exit(small_model, x, policy)
    x_bad = x.clone()
    x_bad[2] = math.nan
    result = early_exit(small_model, x_bad, policy)
    assert int(result.exit_index[2]) == n - 1
    assert bool(result.logits[2].isnan().any())
    keep = [0, 1, 3, 4, 5]
    assert torch.equal(result.exit_index[keep], clean.exit_index[keep])
    torch.testing.assert_close(result.logits[keep], clean.logits[keep], rtol=1e-4, atol=1e-5)


class EvenSamplesFirst:
    """A policy that subclasses nothing from adanet: even-indexed samples (by their position in
    the input, carried as state) leave at exit 0, the rest at the last exit."""

    def __init__(self, num_exits: int) -> None:
        self.num_exits = num_exits

    def initial_state(self, batch_size: int, device: object = None) -> dict[str, torch.Tensor]:
        return {"position": torch.arange(batch_size, device=device)}

    def step(
        self, exit_index: int, logits: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert state["position"].shape[0] == logits.shape[0]  # compacted with the batch
        leave = (
            (state["position"] % 2 == 0)
            if exit_index == 0
            else torch.zeros_like(state["position"], dtype=torch.bool)
        )
        return leave, state

    def simulate(self, logits: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(logits.shape[1])
        return torch.where(positions % 2 == 0, 0, self.num_exits - 1)


def test_custom_policy_object_runs_through_early_exit(small_model: RANet) -> None:
    policy = EvenSamplesFirst(small_model.num_exits)
    assert isinstance(policy, adanet.ExitDecider)
    x = torch.randn(7, 3, 32, 32)
    with torch.no_grad():
        logits = torch.stack(small_model(x))
    result = early_exit(small_model, x, policy)
    assert torch.equal(result.exit_index, policy.simulate(logits))
    chosen = chosen_logits(logits, result.exit_index)
    torch.testing.assert_close(result.logits, chosen, rtol=1e-4, atol=1e-5)


class _KnowsItsCosts(RANet):
    """A network that reports costs instead of having them measured."""

    def known_exit_costs(self, image_shape: tuple[int, ...], convention: str) -> list[float]:
        assert tuple(image_shape) == (3, 32, 32) and convention == "actual"
        return [float(10 * (k + 1)) for k in range(self.num_exits)]


def test_early_exit_charges_the_costs_a_network_knows_and_measures_the_others() -> None:
    config = RANetConfig(num_blocks=1, block_step=1, step=2)
    knows = _KnowsItsCosts(config).eval()
    x = torch.randn(4, 3, 32, 32)
    everybody_last = EarlyExitPolicy([INF] * knows.num_exits)
    assert early_exit(knows, x, everybody_last).mean_cost == 10.0 * knows.num_exits
    plain = RANet(config).eval()
    assert plain.known_exit_costs((3, 32, 32), "actual") is None
    measured = measure_exit_costs(plain, 32)[-1].macs
    assert early_exit(plain, x, everybody_last).mean_cost == pytest.approx(measured)


@pytest.fixture(scope="module")
def two_block_model() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=2, block_step=1, step=1, num_classes=4)).eval()


def test_every_exit_equals_the_forward(two_block_model: RANet) -> None:
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = two_block_model(x)
        for k in range(two_block_model.num_exits):
            torch.testing.assert_close(adanet.run_to_exit(two_block_model, x, k), expected[k])
        torch.testing.assert_close(adanet.run_to_exit(two_block_model, x, -1), expected[-1])


def test_no_other_head_runs(two_block_model: RANet) -> None:
    ran: list[int] = []
    handles = [
        head.register_forward_hook(lambda _m, _i, _o, k=k: ran.append(k))
        for k, head in enumerate(two_block_model.exits)
    ]
    try:
        with torch.no_grad():
            adanet.run_to_exit(two_block_model, torch.randn(2, 3, 32, 32), 1)
    finally:
        for handle in handles:
            handle.remove()
    assert ran == [1]


def test_no_block_after_the_exit_runs(two_block_model: RANet) -> None:
    last: list[str] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, _o, name=name: last.append(name))
        for name, module in two_block_model.named_modules()
        if name.startswith("branches.") and name.count(".") == 3  # branches.s.blocks.b
    ]
    try:
        with torch.no_grad():
            adanet.run_to_exit(two_block_model, torch.randn(2, 3, 32, 32), 0)
            first = list(last)
            last.clear()
            two_block_model(torch.randn(2, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert 0 < len(first) < len(last)


@pytest.mark.parametrize(
    ("exit_index", "error", "words"),
    [(99, ValueError, "out of range"), (-99, ValueError, "out of range"), (1.0, TypeError, "int")],
)
def test_bad_exit_index(
    two_block_model: RANet, exit_index: object, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        adanet.run_to_exit(two_block_model, torch.randn(1, 3, 32, 32), exit_index)  # type: ignore[arg-type]


def test_bad_model_and_input(two_block_model: RANet) -> None:
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        adanet.run_to_exit(nn.Linear(2, 2), torch.randn(1, 2), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input channels"):
        adanet.run_to_exit(two_block_model, torch.randn(1, 1, 32, 32), 0)


def test_gradients_flow_as_in_the_forward(two_block_model: RANet) -> None:
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out: Tensor = adanet.run_to_exit(two_block_model, x, 0)
    out.sum().backward()
    assert x.grad is not None
