"""Memory-efficient training (shared-storage recomputation): same gradients and BatchNorm
statistics as the default, fewer saved bytes, and no convolution run twice."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import MSDNet, MSDNetConfig, RANet, RANetConfig
from adanet.blocks import DenseLayer, FusionBlock, ScaleBlock, bottleneck_conv
from adanet.blocks._common import as_tensor
from adanet.blocks._shared_recompute import concat_remembering, pieces_of, run_from_pieces

SMALL_RANET = RANetConfig(num_blocks=1, block_step=1, step=2)
SMALL_MSDNET = MSDNetConfig(num_blocks=2, step=1, base=1, num_channels=8, growth_rate=4)


def _assert_same_training(
    plain: nn.Module, efficient: nn.Module, x: Tensor, loss: Callable[[nn.Module, Tensor], Tensor]
) -> None:
    # One step of each from the same weights and input: the gradient of every parameter and
    # of the input, and every buffer (BatchNorm statistics), within 1e-4.
    efficient.load_state_dict(plain.state_dict())
    inputs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    for model, xi in zip((plain, efficient), inputs, strict=True):
        loss(model, xi).backward()
    reached = 0
    for (name, a), b in zip(plain.named_parameters(), efficient.parameters(), strict=True):
        # A pruned-away unit (MSDNet's) gets no gradient in either variant.
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None and b.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-4, msg=name)
            reached += 1
    assert reached > 0.5 * len(list(plain.parameters()))
    assert inputs[0].grad is not None and inputs[1].grad is not None
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, rtol=1e-4, atol=1e-4)
    for (name, kept), (_, got) in zip(
        plain.named_buffers(), efficient.named_buffers(), strict=True
    ):
        torch.testing.assert_close(got, kept, rtol=1e-4, atol=1e-4, msg=name)


def _exit_loss(model: nn.Module, x: Tensor) -> Tensor:
    y = torch.arange(x.shape[0]) % 10
    loss: Tensor = adanet.training.MultiExitLoss()(model(x), y)
    return loss


def _weighted_sum(out: Tensor) -> Tensor:
    # A loss whose gradient differs per element, so that a misplaced channel would show.
    weights = torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)
    return (out * weights).sum()


@pytest.mark.parametrize("bn_after", [True, False], ids=["post-activation", "pre-activation"])
def test_ranet_gradients_and_statistics_equal_the_default(bn_after: bool) -> None:
    config = dataclasses.replace(SMALL_RANET, bn_after=bn_after)
    plain = RANet(config).train()
    efficient = RANet(dataclasses.replace(config, memory_efficient=True)).train()
    _assert_same_training(plain, efficient, torch.randn(4, 3, 32, 32), _exit_loss)
    tracked = [b for n, b in efficient.named_buffers() if n.endswith("num_batches_tracked")]
    assert tracked and all(int(b) == 1 for b in tracked)  # updated once, not on recompute


def test_msdnet_gradients_and_statistics_equal_the_default() -> None:
    plain = MSDNet(SMALL_MSDNET).train()
    efficient = MSDNet(dataclasses.replace(SMALL_MSDNET, memory_efficient=True)).train()
    _assert_same_training(plain, efficient, torch.randn(4, 3, 32, 32), _exit_loss)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-activation", "pre-activation"])
def test_downsampling_fused_block_with_tail_equals_the_default(norm_first: bool) -> None:
    # A coarse block feeding a fused block whose last layer downsamples, with the coarser
    # block's last feature appended and a transition: every memory-efficient code path.
    def pair(memory_efficient: bool) -> nn.ModuleList:
        kwargs = {"norm_first": norm_first, "memory_efficient": memory_efficient}
        coarse = ScaleBlock(12, 3, 6, **kwargs)  # type: ignore[arg-type]
        fine = ScaleBlock(
            8,
            3,
            4,
            coarse_channels=coarse.feature_channels,
            downsample=True,
            transition=True,
            **kwargs,  # type: ignore[arg-type]
        )
        return nn.ModuleList([coarse, fine]).train()

    def loss(blocks: nn.Module, x: Tensor) -> Tensor:
        assert isinstance(blocks, nn.ModuleList)
        _, features = blocks[0](x[:, :12, ::2, ::2])
        out, _ = blocks[1](x[:, 12:], features)
        return _weighted_sum(out)

    _assert_same_training(pair(False), pair(True), torch.randn(2, 20, 8, 8), loss)


@pytest.mark.parametrize("downsample", [False, True])
def test_fusion_block_equals_the_default(downsample: bool) -> None:
    plain = FusionBlock(8, 12, 4, downsample=downsample).train()
    efficient = FusionBlock(8, 12, 4, downsample=downsample, memory_efficient=True).train()
    coarse = torch.randn(2, 12, 4, 4)

    def loss(block: nn.Module, x: Tensor) -> Tensor:
        return _weighted_sum(block(x, coarse))

    _assert_same_training(plain, efficient, torch.randn(2, 8, 8, 8), loss)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_run_from_pieces_equals_the_block_on_the_concatenation(
    stride: int, norm_first: bool, norm: str
) -> None:
    norm_layer: Callable[[int], nn.Module] = (
        nn.BatchNorm2d if norm == "batch" else (lambda c: nn.GroupNorm(1, c))
    )
    block = bottleneck_conv(
        14, 4, bottleneck_width=2, stride=stride, norm_first=norm_first, norm_layer=norm_layer
    ).train()
    copied = copy.deepcopy(block)
    pieces = [torch.randn(2, c, 6, 6, requires_grad=True) for c in (6, 4, 4)]
    whole = torch.cat([p.detach() for p in pieces], dim=1).requires_grad_()
    expected = block(whole)
    actual = run_from_pieces(copied, pieces)
    torch.testing.assert_close(actual, expected)
    _weighted_sum(expected).backward()
    _weighted_sum(actual).backward()
    assert whole.grad is not None
    got = torch.cat([p.grad for p in pieces if p.grad is not None], dim=1)
    torch.testing.assert_close(got, whole.grad)
    for a, b in zip(block.parameters(), copied.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(b.grad, a.grad)
    for kept, got in zip(block.buffers(), copied.buffers(), strict=True):
        torch.testing.assert_close(got, kept)


def _saved_bytes(model: nn.Module, x: Tensor) -> int:
    # Bytes autograd keeps for backward: every saved tensor's storage, each counted once (a
    # view or a tensor saved twice costs nothing more). Custom autograd functions save
    # through the same hooks, so nothing the memory-efficient path keeps escapes the count.
    # Parameters (conv weights saved by their nodes) are not activation memory: left out.
    storages: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _exit_loss(model, x)
    return sum(storages.values())


@pytest.mark.parametrize("bn_after", [True, False], ids=["post-activation", "pre-activation"])
def test_ranet_saves_at_most_half_the_bytes_for_backward(bn_after: bool) -> None:
    config = dataclasses.replace(RANetConfig.preset("cifar10"), bn_after=bn_after)
    x = torch.randn(2, 3, 32, 32)
    plain = _saved_bytes(RANet(config).train(), x)
    efficient = _saved_bytes(RANet(dataclasses.replace(config, memory_efficient=True)).train(), x)
    assert efficient <= 0.5 * plain, (efficient, plain)


def test_msdnet_saves_at_most_half_the_bytes_for_backward() -> None:
    config = MSDNetConfig.preset("cifar10_anytime")
    x = torch.randn(2, 3, 32, 32)
    plain = _saved_bytes(MSDNet(config).train(), x)
    efficient = _saved_bytes(MSDNet(dataclasses.replace(config, memory_efficient=True)).train(), x)
    assert efficient <= 0.5 * plain, (efficient, plain)


@pytest.fixture
def conv_calls() -> Iterator[list[int]]:
    # Counts convolution forwards, wherever they run (forward or a recomputation).
    calls = [0]

    def hook(module: nn.Module, *_: object) -> None:
        if isinstance(module, nn.Conv2d):
            calls[0] += 1

    handle = nn.modules.module.register_module_forward_hook(hook)
    yield calls
    handle.remove()


def test_backward_recomputes_no_convolution(conv_calls: list[int]) -> None:
    model = RANet(dataclasses.replace(SMALL_RANET, memory_efficient=True)).train()
    loss = _exit_loss(model, torch.randn(2, 3, 32, 32))
    forward_calls = conv_calls[0]
    assert forward_calls == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    loss.backward()
    assert conv_calls[0] == forward_calls


def test_eval_and_no_grad_take_the_plain_path() -> None:
    plain = ScaleBlock(8, 3, 4, transition=True)
    efficient = ScaleBlock(8, 3, 4, transition=True, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 6, 6)
    for mode in ("eval", "no_grad"):
        plain.train(mode == "no_grad")
        efficient.train(mode == "no_grad")
        with torch.no_grad():
            expected, expected_features = plain(x)
            out, features = efficient(x)
        assert torch.equal(out, expected)
        # Plain features are whole tensors, not channel pieces.
        assert all(isinstance(f, Tensor) for f in features)
        for f, e in zip(features, expected_features, strict=True):
            assert torch.equal(as_tensor(f), as_tensor(e))


def test_memory_efficient_training_keeps_features_in_pieces() -> None:
    block = ScaleBlock(8, 3, 4, memory_efficient=True).train()
    x = torch.randn(2, 8, 6, 6)
    out, features = block(x)
    assert [len(f) for f in features[1:]] == [2, 3, 4]  # input and each layer's new channels
    assert all(isinstance(f, list) for f in features[1:])
    assert pieces_of(out)[0] is x  # the output remembers its pieces


def test_layers_accept_and_return_remembering_tensors() -> None:
    layer = DenseLayer(8, 4, memory_efficient=True).train()
    x = torch.randn(2, 8, 6, 6)
    joined = concat_remembering([x[:, :5], x[:, 5:]])
    y = layer(joined)
    assert torch.equal(y[:, :8], x)
    assert [p.shape[1] for p in pieces_of(y)] == [5, 3, 4]


def test_a_tensor_changed_in_place_is_no_longer_its_pieces() -> None:
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 3, 3, 3)
    joined = concat_remembering([a, b])
    assert len(pieces_of(joined)) == 2
    joined.mul_(2)
    assert pieces_of(joined) == [joined]
    plain = torch.randn(1, 2, 3, 3)
    assert pieces_of(plain) == [plain]


def test_autocast_training_equals_the_default_within_bfloat16_precision() -> None:
    # Backward recomputes under the forward's autocast state and casts like autocast's conv.
    plain = RANet(SMALL_RANET).train()
    efficient = RANet(dataclasses.replace(SMALL_RANET, memory_efficient=True)).train()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    for model in (plain, efficient):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = _exit_loss(model, x)
        loss.backward()
    for (name, a), b in zip(plain.named_parameters(), efficient.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        assert b.grad.dtype == a.grad.dtype == torch.float32, name
        # bfloat16 keeps 8 bits: sums taken in another order differ by a few of its steps.
        scale = float(a.grad.abs().max()) + 1e-3
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0.05 * scale, msg=name)


class _CountingNorm(nn.Module):
    # A normalisation with state of its own: counts the forwards it has run.
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.calls: Tensor
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        out: Tensor = self.norm(x)
        return out


@pytest.mark.parametrize("norm_first", [False, True])
def test_other_stateful_norms_are_updated_once_per_step(norm_first: bool) -> None:
    plain = DenseLayer(8, 4, norm_first=norm_first, norm_layer=_CountingNorm).train()
    efficient = DenseLayer(
        8, 4, norm_first=norm_first, norm_layer=_CountingNorm, memory_efficient=True
    ).train()
    x = torch.randn(2, 8, 6, 6)

    def loss(layer: nn.Module, x: Tensor) -> Tensor:
        return _weighted_sum(layer(x))

    _assert_same_training(plain, efficient, x, loss)
    counts = [int(m.calls) for m in efficient.modules() if isinstance(m, _CountingNorm)]
    assert counts and all(count == 1 for count in counts)


@pytest.mark.parametrize("network", ["ranet", "msdnet"])
def test_models_in_eval_and_no_grad_give_the_default_outputs_exactly(network: str) -> None:
    def build(memory_efficient: bool) -> nn.Module:
        if network == "ranet":
            return RANet(dataclasses.replace(SMALL_RANET, memory_efficient=memory_efficient))
        return MSDNet(dataclasses.replace(SMALL_MSDNET, memory_efficient=memory_efficient))

    plain, efficient = build(False), build(True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for training in (False, True):  # eval, then training mode under no_grad
        plain.train(training)
        efficient.train(training)
        with torch.no_grad():
            expected, got = plain(x), efficient(x)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_dense_layer_pieces_agree_with_forward(training: bool, stride: int) -> None:
    layer = DenseLayer(8, 4, stride=stride, memory_efficient=True).train(training)
    reference = DenseLayer(8, 4, stride=stride).train(training)
    reference.load_state_dict(layer.state_dict())
    pieces = [torch.randn(2, 5, 6, 6), torch.randn(2, 3, 6, 6)]
    expected = reference(torch.cat(pieces, dim=1))
    out = layer.output_pieces(pieces)
    torch.testing.assert_close(torch.cat(out, dim=1), expected)
    assert [p.shape[1] for p in out] == ([5, 3, 4] if stride == 1 else [8, 4])


@pytest.mark.parametrize("training", [False, True])
def test_fusion_block_pieces_agree_with_forward(training: bool) -> None:
    block = FusionBlock(8, 12, 4, memory_efficient=True).train(training)
    reference = FusionBlock(8, 12, 4).train(training)
    reference.load_state_dict(block.state_dict())
    pieces, coarse = [torch.randn(2, 5, 6, 6), torch.randn(2, 3, 6, 6)], torch.randn(2, 12, 3, 3)
    expected = reference(torch.cat(pieces, dim=1), coarse)
    out = block.output_pieces(pieces, [coarse])
    torch.testing.assert_close(torch.cat(out, dim=1), expected)
    assert [p.shape[1] for p in out] == [5, 3, 1, 3]


def test_an_in_place_activation_never_overwrites_a_saved_piece() -> None:
    # With an identity "norm", the pre-activation ReLU(inplace=True) would otherwise act on
    # the saved piece itself.
    block = bottleneck_conv(6, 4, bottleneck_width=1, norm_first=True, norm_layer=nn.Identity)
    piece = torch.randn(2, 6, 5, 5, requires_grad=True)
    kept = piece.detach().clone()
    whole = kept.clone().requires_grad_()
    out = run_from_pieces(block, [piece])
    _weighted_sum(out).backward()
    _weighted_sum(block(whole * 1)).backward()  # not the leaf: the ReLU is in place
    assert torch.equal(piece.detach(), kept)
    assert piece.grad is not None and whole.grad is not None
    torch.testing.assert_close(piece.grad, whole.grad)
