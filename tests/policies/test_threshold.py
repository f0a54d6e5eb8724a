"""``EarlyExitPolicy`` (adanet.policies.threshold): decisions, measures, temperatures,
recorded context, JSON form, and the incremental API checked against ``simulate`` for every
built-in policy."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

from adanet import PatienceExitPolicy
from adanet.calibration.shares import calibrate_shares, geometric_exit_fractions
from adanet.policies.threshold import MEASURES, EarlyExitPolicy
from step_driver import run_incremental
from synthetic_logits import CALIBRATABLE, make_logits

# --------------------------------------------------------------------------- helpers / oracle


AnyPolicy = EarlyExitPolicy | PatienceExitPolicy


def all_policies(num_exits: int, logits: Tensor) -> Iterator[AnyPolicy]:
    fractions = geometric_exit_fractions(0.7, num_exits)
    for measure in CALIBRATABLE:
        yield calibrate_shares(logits, fractions, measure=measure)
        temperatures = [0.5 + 0.3 * k for k in range(num_exits)]
        yield calibrate_shares(logits, fractions, measure=measure, temperatures=temperatures)
    for k in (1, 2, 3):
        yield PatienceExitPolicy(k, num_exits)


# --------------------------------------------------------------------------- basic object


def test_thresholds_read_back_as_float_tuple() -> None:
    policy = EarlyExitPolicy([0.5, 1, math.inf, -math.inf])
    assert policy.thresholds == (0.5, 1.0, math.inf, -math.inf)
    assert all(type(t) is float for t in policy.thresholds)
    assert policy.num_exits == 4
    assert policy.measure == "max_prob"


def test_inf_and_minus_inf_thresholds() -> None:
    logits = make_logits(num_exits=3, num_samples=50)
    nobody_early = EarlyExitPolicy([math.inf, math.inf, math.inf])
    assert nobody_early.simulate(logits).tolist() == [2] * 50
    everybody_first = EarlyExitPolicy([-math.inf, math.inf, math.inf])
    assert everybody_first.simulate(logits).tolist() == [0] * 50
    second = EarlyExitPolicy([math.inf, -math.inf, 5.0])
    assert second.simulate(logits).tolist() == [1] * 50


def test_last_exit_takes_everybody_regardless_of_threshold() -> None:
    logits = make_logits(num_exits=2, num_samples=100)
    policy = EarlyExitPolicy([2.0, 2.0])  # no probability reaches 2
    assert policy.simulate(logits).tolist() == [1] * 100
    leave, _ = policy.step(1, logits[1], policy.initial_state(100))
    assert bool(leave.all())


def test_simulate_matches_explicit_rule_for_max_prob() -> None:
    logits = make_logits(num_exits=4, num_samples=300)
    policy = EarlyExitPolicy([0.6, 0.5, 0.4, 0.0])
    conf = torch.softmax(logits, dim=2).amax(dim=2)
    expected = []
    for i in range(300):
        k = next((k for k in range(3) if conf[k, i] >= policy.thresholds[k]), 3)
        expected.append(k)
    assert policy.simulate(logits).tolist() == expected
    assert policy.simulate(list(logits)).tolist() == expected
    assert policy.simulate(logits).dtype == torch.int64


def test_measures_are_oriented_and_bounded() -> None:
    confident = torch.tensor([[[20.0, 0.0, 0.0, 0.0]]])
    uniform = torch.zeros(1, 1, 4)
    for measure, lo, hi in (("max_prob", 0.25, 1.0), ("entropy", 0.0, 1.0), ("margin", 0.0, 1.0)):
        assert EarlyExitPolicy([0.999], measure=measure).simulate(confident).tolist() == [0]
        half = EarlyExitPolicy([0.5, 0.5], measure=measure)
        two = torch.cat([uniform, confident])
        # A uniform prediction must not leave at 0.5 for any measure, a confident one must.
        leave, _ = half.step(0, two[0], {})
        assert leave.tolist() == [False]
        leave, _ = half.step(0, two[1], {})
        assert leave.tolist() == [True]
        # Exact endpoints of the scale.
        assert EarlyExitPolicy([lo + 1e-6, 0], measure=measure).simulate(two).tolist() == [1]
        assert EarlyExitPolicy([hi - 1e-3, 0], measure=measure).simulate(
            torch.cat([confident, uniform])
        ).tolist() == [0]


def test_entropy_confidence_value() -> None:
    probs = torch.tensor([0.7, 0.2, 0.1])
    logits = probs.log().view(1, 1, 3)
    expected = 1 - float(-(probs * probs.log()).sum()) / math.log(3)
    just_below = EarlyExitPolicy([expected - 1e-5, 0.0], measure="entropy")
    just_above = EarlyExitPolicy([expected + 1e-5, 0.0], measure="entropy")
    two = torch.cat([logits, logits])
    assert just_below.simulate(two).tolist() == [0]
    assert just_above.simulate(two).tolist() == [1]


def test_margin_confidence_value() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2])
    logits = probs.log().view(1, 1, 3).repeat(2, 1, 1)
    assert EarlyExitPolicy([0.2 - 1e-5, 0], measure="margin").simulate(logits).tolist() == [0]
    assert EarlyExitPolicy([0.2 + 1e-5, 0], measure="margin").simulate(logits).tolist() == [1]


# -------------------------------------------------------------- incremental == simulate


@pytest.mark.parametrize("quantum", [None, 0.5])
def test_step_matches_simulate_for_every_measure(quantum: float | None) -> None:
    logits = make_logits(num_exits=6, num_samples=1500, num_classes=4, seed=3, quantum=quantum)
    policies = list(all_policies(6, logits))
    assert {p.measure for p in policies} == {*MEASURES, "patience"}
    for policy in policies:
        simulated = policy.simulate(logits)
        incremental = run_incremental(policy, logits)
        assert torch.equal(simulated, incremental), policy
        # Several exits must actually be used, or the comparison would be vacuous.
        if not isinstance(policy, PatienceExitPolicy) or policy.patience != 1:
            assert torch.unique(simulated).numel() >= 2, policy


def test_state_tensors_are_batch_first() -> None:
    policy = PatienceExitPolicy(2, 3)
    state = policy.initial_state(7, "cpu")
    assert state and all(v.shape[0] == 7 for v in state.values())
    _, new_state = policy.step(0, torch.randn(7, 5), state)
    assert all(v.shape[0] == 7 for v in new_state.values())
    assert EarlyExitPolicy([0.5, 0.5]).initial_state(7, "cpu") == {}


def test_step_does_not_synchronise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a tensor value on the host is what forces a CUDA sync; forbid all such reads."""
    logits = make_logits(num_exits=4, num_samples=64, num_classes=5)
    policies = list(all_policies(4, logits))
    states = [p.initial_state(64, "cpu") for p in policies]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("step() read a tensor value on the host")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for policy, state in zip(policies, states, strict=True):
        for k in range(4):
            _, state = policy.step(k, logits[k], state)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_step_on_cuda_without_sync_matches_simulate() -> None:
    logits = make_logits(num_exits=4, num_samples=512, num_classes=5, quantum=0.5).cuda()
    policies = list(all_policies(4, logits))
    for policy in policies:
        state = policy.initial_state(512, logits.device)
        alive = torch.arange(512, device=logits.device)
        exits = torch.full((512,), -1, dtype=torch.long, device=logits.device)
        torch.cuda.synchronize()
        # "error" makes any host-device synchronisation inside step() raise.
        torch.cuda.set_sync_debug_mode("error")
        try:
            leave, state = policy.step(0, logits[0], state)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        exits[alive[leave]] = 0
        alive = alive[~leave]
        state = {key: value[~leave] for key, value in state.items()}
        for k in range(1, 4):
            torch.cuda.set_sync_debug_mode("error")
            try:
                leave, state = policy.step(k, logits[k, alive], state)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            exits[alive[leave]] = k
            alive = alive[~leave]
            state = {key: value[~leave] for key, value in state.items()}
        assert torch.equal(exits, policy.simulate(logits)), policy
        assert torch.equal(exits, run_incremental(policy, logits)), policy


# --------------------------------------------------------------------------- serialisation


def test_to_dict_round_trip_through_strict_json() -> None:
    logits = make_logits(num_exits=5, num_samples=700)
    policies = [
        *all_policies(5, logits),
        EarlyExitPolicy([math.inf, -math.inf, 0.1, 1e-300, math.inf], measure="margin"),
        EarlyExitPolicy([0.3]),
    ]
    for policy in policies:
        data = policy.to_dict()
        # The keys other readers (the CLI, the numpy ONNX runner) rely on stay there.
        assert {"measure", "thresholds"} <= set(data)
        text = json.dumps(data, allow_nan=False)
        restored = type(policy).from_dict(json.loads(text))
        assert restored == policy
        assert restored.measure == policy.measure
        assert getattr(restored, "patience", None) == getattr(policy, "patience", None)
        assert hash(restored) == hash(policy)
        assert torch.equal(
            restored.simulate(logits[:1].repeat(policy.num_exits, 1, 1)),
            policy.simulate(logits[:1].repeat(policy.num_exits, 1, 1)),
        )


def test_temperatures_and_context_round_trip() -> None:
    policy = EarlyExitPolicy(
        [0.7, math.inf, -math.inf],
        "entropy",
        temperatures=[1.5, 1.0, 0.75],
        num_classes=10,
        cost_convention="reference",
        input_size=(3, 32, 32),
    )
    data = json.loads(json.dumps(policy.to_dict(), allow_nan=False))
    assert data == {
        "measure": "entropy",
        "thresholds": [0.7, "inf", "-inf"],
        "temperatures": [1.5, 1.0, 0.75],
        "num_classes": 10,
        "cost_convention": "reference",
        "input_size": [32, 32],
    }
    restored = EarlyExitPolicy.from_dict(data)
    assert restored == policy and restored.temperatures == (1.5, 1.0, 0.75)
    assert restored.input_size == (32, 32)
    assert restored != EarlyExitPolicy([0.7, math.inf, -math.inf], "entropy")
    # A file from before these keys existed still loads, with nothing recorded.
    old = EarlyExitPolicy.from_dict({"measure": "max_prob", "thresholds": [0.5, "-inf"]})
    assert old.temperatures is None and old.num_classes is None and old.input_size is None
    old_patience = PatienceExitPolicy.from_dict({"measure": "patience", "thresholds": [2.0] * 4})
    assert old_patience == PatienceExitPolicy(2, 4)
    assert policy.with_context(num_classes=100).num_classes == 100


def test_temperatures_divide_logits_before_the_measure() -> None:
    logits = make_logits(num_exits=3, num_samples=400)
    temps = [3.0, 0.5, 1.0]
    scaled = logits / torch.tensor(temps).view(3, 1, 1)
    for measure in CALIBRATABLE:
        with_t = EarlyExitPolicy([0.6, 0.6, 0.0], measure, temperatures=temps)
        plain = EarlyExitPolicy([0.6, 0.6, 0.0], measure)
        assert torch.equal(with_t.simulate(logits), plain.simulate(scaled))
        assert not torch.equal(with_t.simulate(logits), plain.simulate(logits))
        assert torch.equal(run_incremental(with_t, logits), with_t.simulate(logits))


def test_recorded_classes_are_enforced() -> None:
    policy = EarlyExitPolicy([0.5, 0.0], num_classes=10)
    with pytest.raises(ValueError, match="10 classes"):
        policy.simulate(torch.randn(2, 5, 100))
    with pytest.raises(ValueError, match="10 classes"):
        policy.step(0, torch.randn(5, 100), {})
    with pytest.raises(ValueError, match="10 classes"):
        PatienceExitPolicy(2, 2, num_classes=10).simulate(torch.randn(2, 5, 100))


def test_non_finite_logits_are_handled_on_purpose() -> None:
    logits = torch.zeros(3, 4, 5)
    logits[0, 0, 1] = math.inf  # infinitely sure: max_prob 1, leaves at once
    logits[0, 1, :] = math.nan  # no prediction at exit 0
    logits[:, 2, :] = math.nan  # a NaN image: never confident anywhere
    logits[0, 3, :] = -math.inf  # no class possible
    for measure in CALIBRATABLE:
        policy = EarlyExitPolicy([0.9, 0.0, 0.0], measure)
        assert policy.simulate(logits).tolist() == [0, 1, 2, 1], measure
        assert run_incremental(policy, logits).tolist() == [0, 1, 2, 1], measure


def test_from_dict_errors() -> None:
    with pytest.raises(ValueError):
        EarlyExitPolicy.from_dict({"measure": "max_prob"})
    with pytest.raises(ValueError):
        EarlyExitPolicy.from_dict({"thresholds": ["big", 0.1]})
    with pytest.raises(ValueError):
        EarlyExitPolicy.from_dict({"thresholds": [0.1], "measure": "nope"})
    with pytest.raises(ValueError):
        EarlyExitPolicy.from_dict({"thresholds": "0.1"})
    with pytest.raises(ValueError, match="PatienceExitPolicy"):
        EarlyExitPolicy.from_dict({"thresholds": [2, 2], "measure": "patience"})
    with pytest.raises(ValueError):
        EarlyExitPolicy.from_dict({"thresholds": [0.1], "temperatures": "1"})
    with pytest.raises(ValueError):
        PatienceExitPolicy.from_dict({"thresholds": [0.1]})


def test_repr_and_eq() -> None:
    a = EarlyExitPolicy([0.5, -math.inf])
    assert repr(a) == "EarlyExitPolicy(thresholds=(0.5, -inf), measure='max_prob')"
    assert a == EarlyExitPolicy((0.5, -math.inf), measure="max_prob")
    assert a != EarlyExitPolicy([0.5, -math.inf], measure="margin")
    assert a != EarlyExitPolicy([0.5, math.inf])
    assert a != "not a policy"
    assert len({a, EarlyExitPolicy([0.5, -math.inf])}) == 1


# --------------------------------------------------------------------------- errors


def test_threshold_count_mismatch_names_both_numbers() -> None:
    policy = EarlyExitPolicy([0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match=r"3 thresholds.*5 exits"):
        policy.simulate(make_logits(num_exits=5, num_samples=10))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        EarlyExitPolicy([0.5, math.nan, 0.0])
    with pytest.raises(ValueError, match="'max_prob', 'entropy', 'margin'"):
        EarlyExitPolicy([0.5], measure="maxprob")
    with pytest.raises(ValueError):
        EarlyExitPolicy([])
    with pytest.raises(TypeError):
        EarlyExitPolicy(["a", 0.1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        EarlyExitPolicy("0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EarlyExitPolicy([0.5, 0.1], temperatures=[1.0, -1.0])
    with pytest.raises(ValueError):
        EarlyExitPolicy([0.5, 0.1], num_classes=0)
    with pytest.raises(ValueError):
        EarlyExitPolicy([0.5, 0.1], input_size=(0, 3))


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.simulate(torch.randn(10, 4)),
        lambda p: p.simulate(torch.randn(2, 2, 10, 4)),
        lambda p: p.simulate([torch.randn(10, 4), torch.randn(10)]),
        lambda p: p.simulate([torch.randn(10, 4), torch.randn(9, 4)]),
        lambda p: p.simulate([]),
        lambda p: calibrate_shares(torch.randn(10, 4), [0.5, 0.5]),
        lambda p: p.step(0, torch.randn(2, 10, 4), {}),
        lambda p: p.step(2, torch.randn(10, 4), {}),
        lambda p: p.step(-1, torch.randn(10, 4), {}),
    ],
)
def test_malformed_logits_and_indices(call: Callable[[EarlyExitPolicy], object]) -> None:
    with pytest.raises(ValueError):
        call(EarlyExitPolicy([0.5, 0.0]))
