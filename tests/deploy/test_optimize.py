import dataclasses

import pytest
import torch
from torch import nn

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig, optimize_for_inference
from adanet.calibration import calibrate_shares
from decision_margin import assert_same_decisions

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics


def _randomise_norms(model: nn.Module) -> None:
    # Fresh BatchNorms are identities in eval mode; make folding actually matter.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()


@pytest.mark.parametrize("bn_after", [True, False])
def test_outputs_equal_the_plain_model(bn_after: bool) -> None:
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=2, bn_after=bn_after)).eval()
    _randomise_norms(model)
    optimized = optimize_for_inference(model)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        for ours, theirs in zip(optimized(x), model(x), strict=True):
            assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-4
    assert model.training is False and any(
        isinstance(m, nn.BatchNorm2d) for m in model.modules()
    )  # the original is untouched
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in optimized.modules())
    conv = next(m for m in optimized.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    if bn_after:
        assert norms == 0
    else:
        assert norms > 0  # pre-activation norms cannot be folded into a later conv
    assert not any(p.requires_grad for p in optimized.parameters())


def test_early_exit_and_costs_work_on_the_optimized_copy() -> None:
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=2)).eval()
    _randomise_norms(model)
    optimized = optimize_for_inference(model)
    x = torch.randn(8, 3, 32, 32)
    with torch.inference_mode():
        logits = torch.stack(model(x))
    policy = calibrate_shares(logits, [0.5] + [0.0] * (model.num_exits - 2) + [0.5])
    result = adanet.early_exit(optimized, x, policy)
    assert_same_decisions(result.exit_index, policy, logits)
    reference = adanet.measure_exit_costs(model, 32, convention="reference")
    folded = adanet.measure_exit_costs(optimized, 32, convention="reference")
    # The same convolutions, linear layers and ReLUs: the reference convention agrees.
    assert [c.macs for c in folded] == [c.macs for c in reference]
    actual = adanet.measure_exit_costs(optimized, 32)
    plain = adanet.measure_exit_costs(model, 32)
    # Folding removed the normalisation work, nothing else.
    assert all(a.macs < p.macs for a, p in zip(actual, plain, strict=True))


def test_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        optimize_for_inference(nn.Linear(2, 2))  # type: ignore[type-var]


def test_memory_efficient_training_gives_the_same_gradients_and_statistics() -> None:
    config = RANetConfig(num_blocks=1, block_step=1, step=2)
    plain = RANet(config).train()
    efficient = RANet(dataclasses.replace(config, memory_efficient=True)).train()
    efficient.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for model in (plain, efficient):
        loss = adanet.training.MultiExitLoss()(model(x), y)
        loss.backward()
    for (name, a), b in zip(plain.named_parameters(), efficient.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), b in zip(plain.named_buffers(), efficient.buffers(), strict=True):
        # Recomputation must not update BatchNorm statistics a second time.
        torch.testing.assert_close(b, a, msg=name)


def test_compiled_parts_do_not_recompile_for_each_batch_size() -> None:
    from torch._dynamo.utils import counters

    from adanet.deploy.optimize import compile_for_early_exit

    torch._dynamo.reset()
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1)).eval()
    compile_for_early_exit(model, torch.randn(16, 3, 32, 32), backend="eager")
    policy = EarlyExitPolicy([float("inf")] * model.num_exits)  # every size reaches every part
    for warm_up in (16, 8):
        adanet.early_exit(model, torch.randn(warm_up, 3, 32, 32), policy)
    graphs = counters["stats"]["unique_graphs"]
    for size in (12, 10, 6, 4):
        adanet.early_exit(model, torch.randn(size, 3, 32, 32), policy)
    assert counters["stats"]["unique_graphs"] == graphs
    torch._dynamo.reset()


class _ManyExitNet(adanet.EarlyExitNetwork):
    """Ten exits of one-conv blocks of distinct widths: 11 convs and 10 heads share two code
    objects, more than Dynamo's default 8 compiled variants each. Cheap to compile."""

    def __init__(self, num_exits: int = 10) -> None:
        super().__init__()
        self.in_channels = 3
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(4 + k, 5 + k, 3, padding=1) for k in range(num_exits))
        self.exits = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5 + k, 3))
            for k in range(num_exits)
        )

    def begin(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def advance(self, state: torch.Tensor, exit_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.blocks[exit_index](state).relu()
        return x, x


def _compile_and_run(recorded: list[int]) -> tuple[int, int]:
    """Compile a _ManyExitNet for early exit and run it; return the number of parts and of
    graphs the backend was given. ``recorded`` gets the private limit in force at each."""
    import torch._dynamo

    from adanet.deploy.optimize import compile_for_early_exit

    def backend(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        # Dynamo calls the backend from inside the compiled part's call.
        recorded.append(torch._dynamo.config.recompile_limit)
        return graph.forward

    torch._dynamo.reset()
    before = torch._dynamo.config.recompile_limit
    model = _ManyExitNet().eval()
    x = torch.randn(4, 3, 8, 8)
    compile_for_early_exit(model, x, backend=backend)
    assert torch._dynamo.config.recompile_limit == before
    seen: list[int] = []
    model.exits[0].register_forward_pre_hook(
        lambda module, args: seen.append(torch._dynamo.config.recompile_limit)
    )
    with torch.inference_mode():
        expected = torch.stack(model(x))
    policy = EarlyExitPolicy([float("inf")] * model.num_exits)
    result = adanet.early_exit(model, x, policy, costs=[float(k) for k in range(10)])
    assert torch._dynamo.config.recompile_limit == before  # nothing changed process-wide
    assert seen and all(value == before for value in seen)  # nor around the compiled parts
    torch.testing.assert_close(result.logits, expected[-1])
    torch._dynamo.reset()
    return 1 + 2 * model.num_exits, len(recorded)


@pytest.mark.slow
def test_compile_for_early_exit_compiles_every_part_and_changes_no_global_setting() -> None:
    parts, graphs = _compile_and_run([])
    # Each part compiled (none silently left eager by the limit of 8 per code object).
    assert graphs >= parts


@pytest.mark.slow
def test_compile_for_early_exit_without_a_public_limit_patches_only_during_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adanet.deploy.optimize

    # As on torch versions whose torch.compile takes no recompile_limit.
    monkeypatch.setattr(adanet.deploy.optimize, "_compile_takes_recompile_limit", lambda: False)
    recorded: list[int] = []
    parts, graphs = _compile_and_run(recorded)
    assert graphs >= parts
    assert set(recorded) == {4 * parts}  # raised while compiling, restored after


def test_compile_for_early_exit_says_when_it_cannot_set_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adanet.deploy.optimize

    monkeypatch.setattr(adanet.deploy.optimize, "_compile_takes_recompile_limit", lambda: False)
    monkeypatch.setattr(adanet.deploy.optimize, "_RECOMPILE_LIMIT_NAMES", ("no_such_limit",))
    with pytest.raises(RuntimeError, match="recompile_limit"):
        adanet.deploy.optimize.compile_for_early_exit(
            _ManyExitNet().eval(), torch.randn(2, 3, 8, 8)
        )
