"""Proof that :func:`adanet.early_exit` computes nothing for a sample after it has left.

Forward pre-hooks on every block (stage) and every exit head record, for each call, which
samples the module is given. A sample is recognised by its row: the module's input row
equals exactly one row of the input that module gets when the whole batch runs through every
exit (random images and weights make the rows distinct). With each sample's exit ``e_i``
known, a module that computes for exit ``j`` (it runs while the network advances to exit
``j``; the stem runs before exit 0) must be given exactly the samples with ``e_i >= j``: none
that left earlier, none missing, so the batch sizes add up. A module computing for an exit
that no sample reaches must not run at all.

With shape buckets (the default) a stage runs on the bucket's number of rows: every sample
still in exactly once, plus padding rows up to the bucket size (copies of a sample still in,
or the rows of samples that left while the bucket stayed the same) and never more rows than
that: a stage never receives rows it does not need.

The checker is itself tested: an ``early_exit`` that runs the whole batch through every exit
and then picks each sample's row gives the same results but fails the check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import EarlyExitNetwork, EarlyExitPolicy, EarlyExitResult
from adanet.calibration import calibrate_shares
from adanet.inference import BucketSpec, SizeBuckets
from conftest import load_example
from decision_margin import assert_same_decisions

REPO = Path(__file__).resolve().parents[1]
BATCH = 24

EarlyExitFunction = Callable[..., EarlyExitResult]


# These nets are small: one intra-op thread is faster, and far faster on a busy CPU.
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


def _randomise_norms(model: nn.Module) -> None:
    # Fresh BatchNorms are identities in eval mode; random statistics make every part's
    # output, and so every row, depend on the weights.
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))


def _small_ranet() -> tuple[EarlyExitNetwork, list[str], int]:
    # Blocks per scale 2, 3, 4; exits 0-1 on the coarsest branch, exit 2 runs the finer
    # branch's two fused blocks and its third, exit 3 the finest branch's four blocks.
    config = adanet.RANetConfig(num_blocks=2, block_step=1, num_channels=8, growth_rate=4, step=1)
    model = adanet.RANet(config)
    parts = ["stem"]
    parts += [
        f"branches.{s}.blocks.{b}" for s, n in enumerate(config.blocks_per_scale) for b in range(n)
    ]
    parts += [f"exits.{k}" for k in range(model.num_exits)]
    return model, parts, 32


def _small_msdnet() -> tuple[EarlyExitNetwork, list[str], int]:
    config = adanet.MSDNetConfig(num_blocks=4, base=1, step=1, num_channels=4, growth_rate=4)
    model = adanet.MSDNet(config)
    parts = ["stem", *(f"blocks.{k}" for k in range(4)), *(f"exits.{k}" for k in range(4))]
    return model, parts, 32


def _custom_network() -> tuple[EarlyExitNetwork, list[str], int]:
    model: EarlyExitNetwork = load_example("custom_network").TinyMultiScaleNet(num_classes=10)
    parts = ["stem", "coarse.blocks.0", "coarse.blocks.1", "fine.blocks.0", "fine.blocks.1"]
    parts += [f"exits.{k}" for k in range(4)]
    return model, parts, 32


NETWORKS: dict[str, Callable[[], tuple[EarlyExitNetwork, list[str], int]]] = {
    "ranet": _small_ranet,
    "msdnet": _small_msdnet,
    "custom_network_example": _custom_network,
}


def _first_tensor(value: Any) -> Tensor:
    """The first tensor in a module's positional inputs (a tensor or nested lists of them)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            try:
                return _first_tensor(item)
            except LookupError:
                continue
    raise LookupError("no tensor among the inputs")


class _Recorder:
    """Forward pre-hooks on the named parts; ``exit_now`` is the exit being advanced to."""

    def __init__(self, model: EarlyExitNetwork, parts: list[str]) -> None:
        modules = dict(model.named_modules())
        missing = [name for name in parts if name not in modules]
        assert not missing, f"no such modules: {missing}"
        covered = {id(p) for name in parts for p in modules[name].parameters()}
        unhooked = [n for n, p in model.named_parameters() if id(p) not in covered]
        assert not unhooked, f"parameters outside the hooked parts: {unhooked}"
        self.exit_now = -1
        self.calls: list[tuple[str, int, Tensor]] = []  # (part, exit, input rows)
        self._handles = [
            modules[name].register_forward_pre_hook(self._hook(name)) for name in parts
        ]
        advance = model.advance

        def tracked_advance(state: Any, exit_index: int) -> tuple[Tensor, Any]:
            self.exit_now = exit_index
            return advance(state, exit_index)

        # An instance attribute shadows the method for this model only; removed in close().
        model.advance = tracked_advance  # type: ignore[method-assign]
        self._model = model

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            rows = _first_tensor(inputs).detach().float().reshape(len(_first_tensor(inputs)), -1)
            self.calls.append((name, self.exit_now, rows.clone()))

        return hook

    def reset(self) -> None:
        self.exit_now = -1
        self.calls = []

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        del self._model.advance


def _identify(rows: Tensor, full: Tensor, where: str) -> list[int]:
    """Which sample of the full batch each row is (rows must match one full row each)."""
    scale = float(full.abs().max()) or 1.0
    distance = torch.cdist(rows.double(), full.double(), p=float("inf"))  # [n, N]
    samples = []
    for i, row_distance in enumerate(distance):
        matches = (row_distance <= 1e-4 * scale).nonzero().flatten().tolist()
        assert len(matches) == 1, f"{where}: row {i} matches samples {matches} of the full batch"
        samples.append(matches[0])
    return samples


def check_early_exit_skips_work(
    run: EarlyExitFunction,
    model: EarlyExitNetwork,
    parts: list[str],
    x: Tensor,
    policy: EarlyExitPolicy,
    costs: list[float],
    buckets: BucketSpec = "exact",
) -> EarlyExitResult:
    """Run ``run(model, x, policy, costs=costs, buckets=buckets)`` under the hooks and assert
    that no part sees a sample after the exit it left at (beyond padding, with buckets), and
    that every part sees every sample still in the network.

    Returns:
        The result of ``run``.
    """
    recorder = _Recorder(model, parts)
    try:
        with torch.no_grad():
            full_logits = torch.stack(model(x))  # every exit, every sample
        full = {name: rows for name, _, rows in recorder.calls}
        full_exit = {name: exit_now for name, exit_now, _ in recorder.calls}
        assert len(full) == len(recorder.calls) == len(parts), "a part ran twice in forward"
        recorder.reset()
        result = run(model, x, policy, costs=costs, buckets=buckets)
        calls = recorder.calls
    finally:
        recorder.close()

    exit_index = result.exit_index.cpu()
    assert_same_decisions(exit_index, policy, full_logits.cpu())
    n = len(x)
    sizes = _running_sizes(exit_index, model.num_exits, SizeBuckets.parse(buckets))
    seen_by: dict[str, list[int]] = {}
    for name, exit_now, rows in calls:
        assert name not in seen_by, f"{name} ran twice"
        assert exit_now == full_exit[name], f"{name} ran for exit {exit_now}, not {full_exit[name]}"
        seen_by[name] = _identify(rows, full[name], name)
    for name in parts:
        j = full_exit[name]
        samples = seen_by.get(name, [])
        still_in = [i for i in range(n) if exit_index[i] >= j]
        assert set(still_in) <= set(samples), (
            f"{name} (exit {j}) missed samples {sorted(set(still_in) - set(samples))}"
        )
        padding = len(samples) - len(still_in)
        if buckets == "exact" or not still_in:
            gone = sorted(i for i in samples if exit_index[i] < max(j, 0))
            assert not gone, (
                f"{name} (computing for exit {j}) saw samples {gone}, which had left at "
                f"exits {exit_index[gone].tolist()}"
            )
            # The batch size each part sees is the number of samples still present.
            assert padding == 0 and sorted(samples) == still_in, f"{name} saw other samples"
        else:
            # Every sample still in (checked above); the other rows are padding (copies of a
            # sample still in, or samples that left) up to the bucket size, never beyond.
            assert len(samples) == sizes[max(j, 0)], (
                f"{name} (exit {j}) ran on {len(samples)} rows, the bucket holds {sizes[j]}"
            )
    # The samples leaving at each exit add up to the batch.
    counts = torch.bincount(exit_index, minlength=model.num_exits)
    assert int(counts.sum()) == n
    torch.testing.assert_close(
        result.logits, full_logits[exit_index, torch.arange(n)], rtol=1e-4, atol=1e-4
    )
    return result


def _running_sizes(exit_index: Tensor, num_exits: int, buckets: SizeBuckets) -> list[int]:
    """Rows of the batch each exit's stage runs on: the batch, then after each exit the bucket
    of the samples still in, unless that bucket is no smaller than the running batch."""
    sizes = [len(exit_index)]
    for k in range(num_exits - 1):
        staying = int((exit_index > k).sum())
        target = buckets.size_for(staying, sizes[-1]) if staying else 0
        sizes.append(target)
    return sizes


def _policy(model: EarlyExitNetwork, x: Tensor, shares: list[float]) -> EarlyExitPolicy:
    with torch.no_grad():
        logits = torch.stack(model(x))
    return calibrate_shares(logits, shares)


def _spread_shares(num_exits: int) -> list[float]:
    # A quarter at exit 0, nobody at exit 1, a quarter midway, the rest at the end.
    shares = [0.0] * num_exits
    shares[0] = 0.25
    shares[max(2, num_exits // 2)] += 0.25
    shares[-1] += 0.5
    return shares


def _prepare(
    network: str, *, optimize: bool = False
) -> tuple[EarlyExitNetwork, list[str], Tensor, list[float]]:
    torch.manual_seed(0)
    model, parts, size = NETWORKS[network]()
    _randomise_norms(model)
    model.eval()
    if optimize:
        model = adanet.optimize_for_inference(model)
    x = torch.randn(
        BATCH, model.in_channels, size, size, generator=torch.Generator().manual_seed(1)
    )
    # Measured before any hook is registered (measuring runs the model on one blank image).
    costs = [c.macs for c in adanet.measure_exit_costs(model, size)]
    return model, parts, x, costs


def _check(
    run: EarlyExitFunction, network: str, buckets: BucketSpec = "exact", **kwargs: Any
) -> EarlyExitResult:
    model, parts, x, costs = _prepare(network, **kwargs)
    policy = _policy(model, x, _spread_shares(model.num_exits))
    result = check_early_exit_skips_work(run, model, parts, x, policy, costs, buckets)
    used = set(result.exit_index.tolist())
    assert {0, model.num_exits - 1} <= used and len(used) >= 3, f"exits used: {sorted(used)}"
    return result


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_no_part_sees_a_sample_after_it_left(network: str) -> None:
    _check(adanet.early_exit, network)


@pytest.mark.parametrize("buckets", ["auto", "pow2", "8"])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_with_buckets_parts_see_the_samples_still_in_and_padding_only(
    network: str, buckets: str
) -> None:
    spec: BucketSpec = int(buckets) if buckets.isdigit() else buckets
    result = _check(adanet.early_exit, network, buckets=spec)
    reached = int(result.exit_index.max()) + 1
    sizes = _running_sizes(result.exit_index, reached, SizeBuckets.parse(spec))
    # The check is not vacuous: some stage ran on padding rows.
    assert any(size > int((result.exit_index >= j).sum()) for j, size in enumerate(sizes))


def test_parts_after_the_last_sample_left_never_run() -> None:
    model, parts, x, costs = _prepare("ranet")
    shares = [0.5, 0.5] + [0.0] * (model.num_exits - 2)  # everybody gone after exit 1
    policy = _policy(model, x, shares)
    result = check_early_exit_skips_work(adanet.early_exit, model, parts, x, policy, costs)
    assert int(result.exit_index.max()) <= 1


@pytest.mark.parametrize("buckets", ["exact", "auto"])
def test_optimized_model_skips_work(buckets: str) -> None:
    _check(adanet.early_exit, "ranet", buckets=buckets, optimize=True)


@pytest.mark.slow
@pytest.mark.parametrize("network", ["ranet", "custom_network_example"])
def test_compiled_model_skips_work(network: str) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    model, parts, x, costs = _prepare(network, optimize=True)
    # The eager backend keeps compilation cheap; Dynamo still captures each part's forward,
    # which is what could change what runs when.
    adanet.deploy.compile_for_early_exit(model, x[:4], backend="eager")
    policy = _policy(model, x, _spread_shares(model.num_exits))
    check_early_exit_skips_work(adanet.early_exit, model, parts, x, policy, costs)
    torch._dynamo.reset()


def _run_everything_then_pick(
    model: EarlyExitNetwork, x: Tensor, policy: EarlyExitPolicy, *, costs: list[float], **_: Any
) -> EarlyExitResult:
    """A fake early exit: the right answers, computed the expensive way."""
    with torch.no_grad():
        logits = torch.stack(model(x))
    exit_index = policy.simulate(logits)
    chosen = logits[exit_index, torch.arange(len(x))]
    cost = torch.tensor(costs, dtype=torch.float64)[exit_index]
    return EarlyExitResult(logits=chosen, exit_index=exit_index, cost=cost)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_the_check_catches_running_everything_then_picking_rows(network: str) -> None:
    with pytest.raises(AssertionError, match="which had left at exits"):
        _check(_run_everything_then_pick, network)
