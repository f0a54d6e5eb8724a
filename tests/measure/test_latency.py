"""Tests for adanet.measure.latency: measured per-exit latency is a valid cost list and is what
early_exit pays; timings are printed by benchmarks/bench_latency.py, never asserted here."""

from __future__ import annotations

import itertools

import pytest
import torch

import adanet
from adanet import RANet, RANetConfig
from adanet.measure.latency import _ExitAt


@pytest.fixture(scope="module")
def model() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=2, block_step=1, step=1, num_classes=4)).eval()


def test_latency_is_a_cumulative_cost_list(model: RANet) -> None:
    model.train()
    costs = adanet.measure_exit_latency(model, 32, batch_size=4, repeats=2, warmup=1)
    assert model.training  # restored
    assert len(costs) == model.num_exits
    assert all(c > 0 for c in costs)
    assert costs == sorted(costs)
    # Usable wherever costs are.
    logits = torch.randn(model.num_exits, 200, 4)
    targets = torch.randint(0, 4, (200,))
    policy = adanet.calibration.calibrate_for_cost(logits, costs, 0.5 * (costs[0] + costs[-1]))
    assert policy.num_exits == model.num_exits
    records = adanet.budgeted_sweep(
        logits, targets, logits.flip(1), targets.flip(0), costs, ps=[1.0]
    )
    assert costs[0] <= records[0].mean_cost <= costs[-1]
    result = adanet.early_exit(model.eval(), torch.randn(3, 3, 32, 32), policy, costs=costs)
    assert set(result.cost.tolist()) <= set(costs)


def test_exit_at_policy_sends_everybody_to_one_exit(model: RANet) -> None:
    x = torch.randn(5, 3, 32, 32)
    for k in range(model.num_exits):
        policy = _ExitAt(k, model.num_exits)
        assert isinstance(policy, adanet.ExitDecider)
        result = adanet.early_exit(model, x, policy, costs=[0.0] * model.num_exits)
        assert result.exit_index.tolist() == [k] * 5
        assert policy.simulate(torch.zeros(model.num_exits, 5, 4)).tolist() == [k] * 5


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"input_size": "32"}, TypeError),
        ({"input_size": (3, 0, 32)}, ValueError),
        ({"input_size": (1, 32, 32)}, ValueError),  # the model takes 3 channels
        ({"input_size": 32.0}, TypeError),
        ({"batch_size": True}, TypeError),
        ({"batch_size": 0}, ValueError),
        ({"repeats": 0}, ValueError),
        ({"warmup": -1}, ValueError),
    ],
)
def test_bad_arguments(model: RANet, kwargs: dict[str, object], error: type) -> None:
    args: dict[str, object] = {"input_size": 32, "batch_size": 2, "repeats": 1, "warmup": 0}
    args.update(kwargs)
    with pytest.raises(error):
        adanet.measure_exit_latency(model, **args)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        adanet.measure_exit_latency(torch.nn.Linear(2, 2), 32)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latency_on_another_device_leaves_the_model_alone(model: RANet) -> None:
    costs = adanet.measure_exit_latency(model, 32, batch_size=8, device="cuda", repeats=3)
    assert len(costs) == model.num_exits and costs == sorted(costs)
    assert next(model.parameters()).device.type == "cpu"


def test_latency_is_timed_on_distinct_batches(
    model: RANet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adanet.inference.engine as engine

    seen: list[torch.Tensor] = []
    real = engine.early_exit

    def recording(network: object, x: torch.Tensor, *args: object, **kwargs: object) -> object:
        seen.append(x)
        return real(network, x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "early_exit", recording)
    adanet.measure_exit_latency(model, 32, batch_size=2, repeats=3, warmup=1)
    # Per exit, one warm-up batch and three timed ones, each a batch never seen before.
    assert len(seen) == 4 * model.num_exits
    assert len({id(x) for x in seen}) == len(seen)
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(seen))
