"""``export_stages`` and ``ExportedNetwork``: exported stages exit early exactly as eager."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import EarlyExitPolicy, MSDNet, RANet, RANetConfig
from adanet.calibration import calibrate_shares
from adanet.deploy.stages import ExportedNetwork, StageExportError, export_stages, state_signature
from conftest import load_example
from decision_margin import assert_same_decisions
from small_configs import SMALL_MSDNET

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics


def _build(name: str) -> adanet.EarlyExitNetwork:
    torch.manual_seed(1)
    model: adanet.EarlyExitNetwork
    if name == "ranet":
        model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    elif name == "msdnet":
        model = MSDNet(SMALL_MSDNET)
    else:
        model = load_example("custom_network").TinyMultiScaleNet(num_classes=10, in_channels=3)
    # Non-trivial BatchNorm statistics, so a stage that used batch statistics would differ.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    # Logits of random weights are nearly uniform: the entropy of 24 samples would then span
    # 2e-5, a few float32 steps, and decisions would tie. Larger head weights spread them.
    with torch.no_grad():
        for module in model.exits.modules():
            if isinstance(module, nn.Linear):
                module.weight.mul_(20.0)
    return model.eval()


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here on one thread: small convolutions only contend for the cores."""


@pytest.fixture(scope="module", params=["ranet", "msdnet", "custom"])
def exported(request: pytest.FixtureRequest) -> tuple[Any, list[Any], ExportedNetwork]:
    model = _build(request.param)
    programs = export_stages(model, torch.randn(3, 3, 32, 32))
    costs = [float(c.macs) for c in adanet.measure_exit_costs(model, 32)]
    return model, programs, ExportedNetwork(programs, costs=costs)


def _calibrated(model: adanet.EarlyExitNetwork, x: Tensor, measure: str) -> EarlyExitPolicy:
    with torch.no_grad():
        logits = model(x)
    share = 1.0 / model.num_exits
    return calibrate_shares(logits, [share] * model.num_exits, measure=measure)


@pytest.mark.parametrize("measure", ["max_prob", "entropy", "margin", "patience"])
def test_runner_matches_eager_early_exit(
    exported: tuple[Any, list[Any], ExportedNetwork], measure: str
) -> None:
    model, programs, runner = exported
    torch.manual_seed(2)
    x = torch.randn(24, 3, 32, 32)
    if measure == "patience":
        policy = adanet.PatienceExitPolicy(2, model.num_exits)
    else:
        policy = _calibrated(model, x, measure)
    ours = adanet.early_exit(runner, x, policy)
    eager = adanet.early_exit(model, x, policy)
    assert len(programs) == model.num_exits
    with torch.no_grad():
        logits = torch.stack(model(x))
    assert_same_decisions(ours.exit_index, policy, logits)
    assert_same_decisions(eager.exit_index, policy, logits)
    same = ours.exit_index == eager.exit_index  # all but a sample at a threshold, if any
    torch.testing.assert_close(ours.logits[same], eager.logits[same], rtol=0, atol=1e-5)
    assert torch.equal(ours.cost[same], eager.cost[same])
    if measure != "patience":  # a calibrated policy really sends samples out at every exit
        assert len(set(ours.exit_index.tolist())) == model.num_exits


@pytest.mark.parametrize("batch", [1, 5])
def test_programs_take_any_batch(
    exported: tuple[Any, list[Any], ExportedNetwork], batch: int
) -> None:
    model, _programs, runner = exported
    x = torch.randn(batch, 3, 32, 32)
    nobody = EarlyExitPolicy([math.inf] * model.num_exits)
    result = adanet.early_exit(runner, x, nobody)
    with torch.no_grad():
        expected = model(x)[-1]
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-5)
    assert result.exit_index.tolist() == [model.num_exits - 1] * batch


def test_stage_signature_describes_the_flat_state(
    exported: tuple[Any, list[Any], ExportedNetwork],
) -> None:
    model, programs, _runner = exported
    signature = state_signature(model, torch.randn(1, 3, 32, 32))
    assert len(signature) == model.num_exits - 1
    x = torch.randn(4, 3, 32, 32)
    inputs: tuple[Tensor, ...] = (x,)
    for k, program in enumerate(programs[:-1]):
        logits, *state = program.module()(*inputs)
        assert logits.shape[0] == 4
        assert [(tuple(t.shape[1:]), t.dtype) for t in state] == signature[k]
        inputs = tuple(state)
    (last,) = programs[-1].module()(*inputs)
    assert last.shape[0] == 4


def test_everybody_leaves_at_exit_zero(exported: tuple[Any, list[Any], ExportedNetwork]) -> None:
    model, _programs, runner = exported
    x = torch.randn(6, 3, 32, 32)
    everybody = EarlyExitPolicy([-math.inf] * model.num_exits)
    result = adanet.early_exit(runner, x, everybody)
    with torch.no_grad():
        expected = model(x)[0]
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-5)
    assert result.exit_index.tolist() == [0] * 6
    first_cost = adanet.measure_exit_costs(model, 32)[0].macs
    assert result.cost.tolist() == [first_cost] * 6


def test_runner_rejects_bad_arguments(exported: tuple[Any, list[Any], ExportedNetwork]) -> None:
    model, programs, runner = exported
    policy = EarlyExitPolicy([0.5] * model.num_exits)
    with pytest.raises(ValueError, match="no"):
        ExportedNetwork([])
    with pytest.raises(ValueError, match="costs has 1 entries"):
        ExportedNetwork(programs, costs=[1.0])
    # The same checks as for the eager network: they come from the one engine.
    with pytest.raises(ValueError, match="exits"):
        adanet.early_exit(runner, torch.randn(2, 3, 32, 32), EarlyExitPolicy([0.5] * 9))
    with pytest.raises(TypeError, match="floating-point"):
        adanet.early_exit(runner, torch.zeros(2, 3, 32, 32, dtype=torch.uint8), policy)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        adanet.early_exit(runner, torch.randn(3, 32, 32), policy)
    with pytest.raises(ValueError, match="exported for images of"):
        adanet.early_exit(runner, torch.randn(2, 3, 40, 40), policy)
    with pytest.raises(TypeError, match="ExitDecider"):
        adanet.early_exit(runner, torch.randn(2, 3, 32, 32), None)  # type: ignore[arg-type]


def test_without_costs_the_programs_operations_are_counted() -> None:
    model = _TwoExits("plain").eval()
    programs = export_stages(model, torch.randn(2, 3, 8, 8))
    network = ExportedNetwork(programs)
    result = adanet.early_exit(network, torch.randn(3, 3, 8, 8), EarlyExitPolicy([0.0, 0.0]))
    eager = adanet.measure_exit_costs(model, 8)
    assert result.cost.tolist() == [eager[0].macs] * 3
    assert result.exit_index.tolist() == [0, 0, 0]


def test_the_programs_run_every_exit_as_a_network(
    exported: tuple[Any, list[Any], ExportedNetwork],
) -> None:
    model, _programs, network = exported
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected, got = model(x), network(x)
    for ours, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_export_needs_eval_mode_and_a_protocol_network() -> None:
    model = _build("ranet").train()
    with pytest.raises(RuntimeError, match="eval mode"):
        export_stages(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        export_stages(nn.Linear(2, 2), torch.randn(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels"):
        export_stages(model.eval(), torch.randn(2, 1, 32, 32))


class _TwoExits(adanet.EarlyExitNetwork):
    """A small network whose second stage can be made unexportable."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.in_channels = 3
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.exits = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)) for _ in range(2)
        )

    def begin(self, x: Tensor) -> Any:
        return {"x": self.conv(x)}

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        x = state["x"]
        if exit_index == 1 and self.mode == "data-dependent" and float(x.mean()) > 0:
            x = x * 2  # a branch on the data: not a static graph
        if self.mode == "not-batch-first":
            return x, {"x": x, "scale": torch.ones(7)}
        return x, {"x": x.relu()}


def test_failures_name_the_stage() -> None:
    with pytest.raises(StageExportError, match="stage 1") as info:
        export_stages(_TwoExits("data-dependent").eval(), torch.randn(2, 3, 8, 8))
    assert info.value.stage == 1
    with pytest.raises(StageExportError, match=r"stage 0 .*batch-first"):
        export_stages(_TwoExits("not-batch-first").eval(), torch.randn(2, 3, 8, 8))
