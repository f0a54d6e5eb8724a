"""Preallocated dense-feature buffers (``adanet.blocks.dense_buffers``), as
``optimize_for_inference`` uses them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

import adanet
from adanet import MSDNet, MSDNetConfig, RANet, RANetConfig, optimize_for_inference
from adanet.blocks import ScaleBlock
from adanet.blocks.dense_buffers import (
    BufferedMultiScaleBlock,
    BufferedScaleBlock,
    PrefixFeatures,
    plain_dense_blocks,
    use_dense_buffers,
)
from adanet.calibration import calibrate_shares
from adanet.models.state import select_samples
from decision_margin import assert_same_decisions, chosen_logits

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics


def _randomise_norms(model: nn.Module) -> None:
    # Fresh BatchNorms are identities in eval mode; give them statistics so that folding and
    # the pre-activation norms on buffer prefixes really compute something.
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.normal_(generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.normal_(generator=generator)
            module.bias.data.normal_(generator=generator)


class _CountCat(TorchDispatchMode):
    """Counts the aten concatenations a forward runs."""

    def __init__(self) -> None:
        super().__init__()
        self.cats = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket is torch.ops.aten.cat:
            self.cats += 1
        return func(*args, **(kwargs or {}))


_RANET = RANetConfig(num_blocks=2, block_step=1, step=2, growth_rate=4, num_channels=8)
_NETWORKS = {
    "ranet": lambda: RANet(_RANET),
    "ranet-pre-activation": lambda: RANet(dataclasses.replace(_RANET, bn_after=False)),
    "ranet-one-scale-step": lambda: RANet(
        dataclasses.replace(_RANET, scale_list=(1, 2, 3), block_step=2, num_blocks=3)
    ),
    "msdnet": lambda: MSDNet(MSDNetConfig.preset("cifar10_anytime")),
    "msdnet-no-bottleneck": lambda: MSDNet(
        dataclasses.replace(MSDNetConfig.preset("cifar10_anytime"), bottleneck=False)
    ),
}


def _model(name: str) -> adanet.EarlyExitNetwork:
    torch.manual_seed(0)
    model = _NETWORKS[name]().eval()
    _randomise_norms(model)
    return model


@pytest.mark.parametrize("name", sorted(_NETWORKS))
def test_buffered_outputs_equal_the_plain_model(name: str) -> None:
    model = _model(name)
    optimized = optimize_for_inference(model, dense_buffers=True)
    assert any(
        isinstance(m, (BufferedScaleBlock, BufferedMultiScaleBlock)) for m in optimized.modules()
    )
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        for ours, theirs in zip(optimized(x), model(x), strict=True):
            scale = theirs.abs().max().item()
            assert (ours - theirs).abs().max().item() <= 1e-4 * max(scale, 1.0)


@pytest.mark.parametrize("name", ["ranet", "msdnet"])
def test_buffered_blocks_run_no_concatenation(name: str) -> None:
    model = _model(name)
    x = torch.randn(2, 3, 32, 32)
    counts = {}
    for buffers in (True, False):
        optimized = optimize_for_inference(model, dense_buffers=buffers)
        with torch.inference_mode(), _CountCat() as counter:
            optimized(x)
        counts[buffers] = counter.cats
    assert counts[False] > 0  # the plain blocks concatenate, so the count can fail
    assert counts[True] == 0


def test_every_ranet_and_msdnet_block_is_switched_and_keeps_its_parameters() -> None:
    ranet = _model("ranet")
    names = [name for name, _ in ranet.state_dict().items()]
    blocks = sum(1 for m in ranet.modules() if type(m) is ScaleBlock)
    assert use_dense_buffers(ranet) == blocks > 0
    assert list(ranet.state_dict()) == names
    msdnet = _model("msdnet")
    assert use_dense_buffers(msdnet) == len(msdnet.blocks)
    assert all(type(block) is BufferedMultiScaleBlock for block in msdnet.blocks)


def test_by_default_only_ranet_blocks_are_buffered() -> None:
    ranet = optimize_for_inference(_model("ranet"))
    msdnet = optimize_for_inference(_model("msdnet"))
    assert any(isinstance(m, BufferedScaleBlock) for m in ranet.modules())
    assert not any(isinstance(m, BufferedMultiScaleBlock) for m in msdnet.modules())
    everything = optimize_for_inference(_model("msdnet"), dense_buffers=True)
    assert all(isinstance(block, BufferedMultiScaleBlock) for block in everything.blocks)
    switched = use_dense_buffers(_model("ranet"), scale_blocks=False)
    assert switched == 0


def test_subclasses_with_their_own_forward_are_left_alone() -> None:
    class MyBlock(ScaleBlock):
        pass

    block = MyBlock(8, 2, 4)
    assert use_dense_buffers(nn.Sequential(block)) == 0
    assert type(block) is MyBlock


def test_training_and_autograd_use_the_plain_path() -> None:
    model = _model("ranet")
    reference = _model("ranet")
    use_dense_buffers(model)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    # Eval mode with gradients: the buffered path would break autograd, the plain one works.
    loss = torch.stack(model(x)).sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    model.train()
    reference.train()
    with torch.no_grad():
        for ours, theirs in zip(model(x), reference(x), strict=True):
            assert torch.allclose(ours, theirs, atol=1e-5)


def test_early_exit_compacts_the_buffers_and_matches_the_full_forward() -> None:
    model = _model("ranet")
    optimized = optimize_for_inference(model)
    x = torch.randn(12, 3, 32, 32)
    with torch.inference_mode():
        logits = torch.stack(model(x))
    middle = model.num_exits - 2
    policy = calibrate_shares(logits, [0.4] + [0.2 / middle] * middle + [0.4])
    result = adanet.early_exit(optimized, x, policy)
    assert_same_decisions(result.exit_index, policy, logits)
    chosen = chosen_logits(logits, result.exit_index)
    assert torch.allclose(result.logits, chosen, atol=1e-4 * chosen.abs().max().item())


def test_prefix_features_are_views_and_select_rows_once() -> None:
    buffer = torch.arange(2 * 6 * 2 * 2, dtype=torch.float32).view(2, 6, 2, 2)
    small = torch.zeros(2, 8, 1, 1)
    features = PrefixFeatures([buffer, small], ((0, 3), (0, 6), (1, 8)))
    assert len(features) == 3
    assert features[0].data_ptr() == buffer.data_ptr()
    assert torch.equal(features[1], buffer)
    picked = select_samples(features, torch.tensor([1]))
    assert isinstance(picked, PrefixFeatures)
    assert [tuple(b.shape) for b in picked.buffers] == [(1, 6, 2, 2), (1, 8, 1, 1)]
    assert torch.equal(picked[0], buffer[1:, :3])


def test_costs_are_counted_on_the_plain_blocks() -> None:
    model = _model("ranet")
    with_buffers = adanet.measure_exit_costs(optimize_for_inference(model), 32)
    without = adanet.measure_exit_costs(optimize_for_inference(model, dense_buffers=False), 32)
    assert [(c.macs, c.params) for c in with_buffers] == [(c.macs, c.params) for c in without]


def test_plain_dense_blocks_switches_the_buffers_off_for_its_context_only() -> None:
    model = optimize_for_inference(_model("ranet"))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        with plain_dense_blocks(), _CountCat() as inside:
            model(x)
        with _CountCat() as after:
            model(x)
    assert inside.cats > 0
    assert after.cats == 0


def _features_of_first_block(model: RANet, x: Tensor) -> Any:
    state = model.begin(x)
    block = model.branches[0][0]
    return block(state["x"], None)


def test_a_block_hands_its_features_as_prefix_views_of_its_buffer() -> None:
    model = optimize_for_inference(_model("ranet"))
    plain = _model("ranet")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        _, ours = _features_of_first_block(model, x)
        _, theirs = _features_of_first_block(plain, x)
    assert isinstance(ours, PrefixFeatures)
    assert len(ours) == len(theirs)
    for j in range(len(theirs)):
        assert ours[j].shape == theirs[j].shape
        assert torch.allclose(ours[j], theirs[j], atol=1e-4 * theirs[j].abs().max().item())


@pytest.mark.parametrize("norm_first", [False, True])
def test_a_plain_downsampling_block_matches_its_plain_forward(norm_first: bool) -> None:
    torch.manual_seed(0)
    block = ScaleBlock(8, 3, 4, downsample=True, transition=True, norm_first=norm_first).eval()
    _randomise_norms(block)
    buffered = ScaleBlock(8, 3, 4, downsample=True, transition=True, norm_first=norm_first)
    buffered.load_state_dict(block.state_dict())
    use_dense_buffers(buffered.eval())
    x = torch.randn(2, 8, 9, 9)
    with torch.inference_mode():
        out, features = buffered(x)
        expected, expected_features = block(x)
    assert isinstance(features, PrefixFeatures) and len(features.buffers) == 2
    assert out.shape == expected.shape == (2, block.out_channels, 5, 5)
    assert torch.allclose(out, expected, atol=1e-5)
    for j in range(len(expected_features)):
        assert torch.allclose(features[j], expected_features[j], atol=1e-5)
