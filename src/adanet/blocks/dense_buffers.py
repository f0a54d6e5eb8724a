"""Dense blocks that write into one preallocated feature buffer per block, for inference.

A dense layer's output is its input with a few new channels appended. Written with
``torch.cat``, every layer copies the whole growing feature map; in a channels-last layout
that copy is a strided gather, and a profile of the optimized RANet CIFAR-10 model put a
third of its CPU time in ``aten::cat``. The classes here run the same modules (same
parameters, same state-dict keys) differently: each block allocates one buffer wide
enough for all the channels it will hold, copies its input in once, and every layer writes
its new channels straight into the next channel slice. A layer reads a channel *prefix* of
the buffer, and a leading 1×1 convolution reads it without a copy: in channels-last memory
a prefix of ``c`` channels is an ``[N·H·W, c]`` matrix with row stride ``C``, so the
convolution runs as one matrix product on the view (BLAS takes the stride as its leading
dimension). Other leading layers get a contiguous copy of the prefix.

:func:`adanet.optimize_for_inference` switches the blocks of RANet (:class:`~adanet.
ScaleBlock`) and MSDNet (an ``nn.Sequential`` of :class:`~adanet.MultiScaleDenseLayer` and
:class:`~adanet.MultiScaleTransition`) to these classes with :func:`use_dense_buffers`.
The features a RANet block hands to the next finer branch are then a
:class:`PrefixFeatures`: the block's buffers and the width of each feature, so that
early exit's compaction (:func:`adanet.models.select_samples`) selects the rows of
each buffer once rather than of every prefix separately.

These modules are for evaluation: in training mode, or where autograd records (gradients
enabled and the input or a parameter requires them), they run their parent class's
``forward``, so they stay usable for anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adanet.blocks._common import Feature, as_tensor, resize_to
from adanet.blocks.dense_layer import DenseLayer
from adanet.blocks.fusion_block import FusionBlock
from adanet.blocks.multiscale_dense_layer import (
    CrossScaleDenseUnit,
    MultiScaleDenseLayer,
    MultiScaleTransition,
)
from adanet.blocks.scale_branch import ScaleBlock

__all__ = [
    "BufferedMultiScaleBlock",
    "BufferedScaleBlock",
    "PrefixFeatures",
    "plain_dense_blocks",
    "use_dense_buffers",
]


@dataclasses.dataclass
class PrefixFeatures:
    """A dense block's features kept as channel prefixes of its buffers.

    Feature ``j`` is the first ``views[j][1]`` channels of ``buffers[views[j][0]]``. A block
    that halves the resolution at its last layer has two buffers (before and after).

    Attributes:
        buffers: ``[N, C_b, H_b, W_b]`` buffers, batch first.
        views: Per feature, its buffer's index and its channel count.
    """

    buffers: list[Tensor]
    views: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> Tensor:
        buffer, channels = self.views[index]
        return self.buffers[buffer][:, :channels]  # [N, channels, H_b, W_b], a view


def _leaf_modules(module: nn.Module) -> list[nn.Module]:
    # A bottleneck or conv-norm-act is a (possibly nested) Sequential: flatten it.
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaf_modules(child)]
    return [module]


def _is_pointwise_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride == (1, 1)
        and module.padding in ((0, 0), "valid")
        and module.dilation == (1, 1)
        and module.groups == 1
    )


def _pointwise_on_prefix(conv: nn.Conv2d, prefix: Tensor) -> Tensor:
    """``conv(prefix)`` for a 1×1 conv and a channel prefix of a channels-last buffer,
    without a copy: the prefix is an ``[N·H·W, c]`` matrix whose row stride is the buffer's
    width, which a matrix product takes as its leading dimension."""
    n, c, h, w = prefix.shape
    rows = prefix.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view
    out = F.linear(rows, conv.weight.view(conv.out_channels, c), conv.bias)  # [N·H·W, C_out]
    return out.view(n, h, w, conv.out_channels).permute(0, 3, 1, 2)  # channels-last NCHW


def _run_on_prefix(module: nn.Module, prefix: Tensor) -> Tensor:
    """``module(prefix)`` where ``prefix`` is a channel prefix (a view) of a buffer.

    A leading 1×1 conv reads the prefix in place; anything else gets a contiguous copy
    first, so that no layer (an in-place activation, say) can write into the buffer.
    """
    leaves = _leaf_modules(module)
    first = leaves[0]
    channels_last = prefix.stride(1) == 1 and prefix.stride(2) == prefix.shape[3] * prefix.stride(3)
    if _is_pointwise_conv(first) and channels_last:
        x = _pointwise_on_prefix(cast(nn.Conv2d, first), prefix)
        for leaf in leaves[1:]:
            x = leaf(x)
        return x
    out: Tensor = module(prefix.contiguous())
    return out


def _new_buffer(like: Tensor, channels: int, size: Sequence[int]) -> Tensor:
    # Channels-last, the layout oneDNN's convolutions run fastest on, so that a prefix is
    # a row-strided matrix for the 1×1 convs. (A planar buffer makes the writes of a few
    # new channels cheaper, but its 3×3 convs then run planar, which cost more than the
    # writes saved: measured on the RANet and MSDNet CIFAR configurations, 2-core AVX2.)
    shape = (like.shape[0], channels, int(size[0]), int(size[1]))
    return torch.empty(
        shape, dtype=like.dtype, device=like.device, memory_format=torch.channels_last
    )


def _write(buffer: Tensor, start: int, *pieces: Tensor) -> int:
    # Copy each piece into the next channels of the buffer; returns the width written so far.
    for piece in pieces:
        stop = start + piece.shape[1]
        buffer[:, start:stop].copy_(piece)
        start = stop
    return start


_PLAIN: ContextVar[bool] = ContextVar("adanet_plain_dense_blocks", default=False)


@contextlib.contextmanager
def plain_dense_blocks() -> Iterator[None]:
    """Within this context, buffered blocks run their parent class's ``forward``.

    :func:`adanet.measure_exit_costs` counts costs this way: module hooks (which the
    ``"reference"`` convention and the parameter count rely on) only see a 1×1 conv that is
    called as a module, and the buffered path runs it as a matrix product. The convolutions
    and their MACs are the same either way.
    """
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def _active(module: nn.Module, x: Tensor) -> bool:
    if _PLAIN.get():
        return False
    # Buffers are for evaluation: the 1×1 convs read views of a buffer that later layers
    # write into, which autograd would (rightly) refuse to differentiate.
    if module.training:
        return False
    if not torch.is_grad_enabled():
        return True
    return not x.requires_grad and not any(p.requires_grad for p in module.parameters())


class BufferedScaleBlock(ScaleBlock):
    """A :class:`~adanet.ScaleBlock` that writes its dense features into one buffer.

    Same modules and outputs as the block it was made from (see the module docstring); the
    features it returns are a :class:`PrefixFeatures`. Made by :func:`use_dense_buffers`.
    """

    def forward(  # type: ignore[override]
        self, x: Tensor, coarse: Sequence[Feature] | PrefixFeatures | None = None
    ) -> tuple[Tensor, list[Feature] | PrefixFeatures]:
        if not _active(self, x):
            plain = None if coarse is None else _as_feature_list(coarse)
            return super().forward(x, plain)
        self._check_coarse(coarse)
        layers = [cast(DenseLayer | FusionBlock, layer) for layer in self.layers]
        widths = self.feature_channels
        extra = 0 if self.fuse_last is None else _out_channels(self.fuse_last)
        last_downsamples = layers[-1].downsampling
        full = widths[-1] + extra
        buffer = _new_buffer(x, full if not last_downsamples else widths[-2], x.shape[-2:])
        _write(buffer, 0, x)
        buffers = [buffer]
        for j, layer in enumerate(layers):
            prefix = buffer[:, : widths[j]]  # [N, widths[j], H, W], a view
            fine_new = _run_on_prefix(layer.conv, prefix)
            size = fine_new.shape[-2:]
            pieces = [fine_new]
            if isinstance(layer, FusionBlock):
                assert coarse is not None  # checked above: a fused block has its features
                coarse_new = _run_on_prefix(layer.coarse_conv, _feature(coarse, j))
                pieces = [resize_to(coarse_new, size), fine_new]
            if layer.downsampling:  # the last layer: the input moves to a smaller buffer
                buffer = _new_buffer(x, full, size)
                _write(buffer, 0, resize_to(prefix, size))
                buffers.append(buffer)
            _write(buffer, widths[j], *pieces)
        if self.fuse_last is not None and coarse is not None:
            last = _run_on_prefix(self.fuse_last, _feature(coarse, len(layers)))
            _write(buffer, widths[-1], resize_to(last, buffer.shape[-2:]))
        out = buffer if self.transition is None else _run_on_prefix(self.transition, buffer)
        views = [(0, width) for width in widths]
        if last_downsamples:
            views[-1] = (1, widths[-1])
        return out, PrefixFeatures(buffers, tuple(views))


def _out_channels(module: nn.Module) -> int:
    convs = [leaf for leaf in _leaf_modules(module) if isinstance(leaf, nn.Conv2d)]
    return convs[-1].out_channels


def _feature(features: Sequence[Feature] | PrefixFeatures, index: int) -> Tensor:
    if isinstance(features, PrefixFeatures):
        return features[index]
    return as_tensor(features[index])


def _as_feature_list(features: Sequence[Feature] | PrefixFeatures) -> list[Feature]:
    if isinstance(features, PrefixFeatures):
        return [features[j] for j in range(len(features))]
    return list(features)


class BufferedMultiScaleBlock(nn.Sequential):
    """An MSDNet block (an ``nn.Sequential`` of :class:`~adanet.MultiScaleDenseLayer` and
    :class:`~adanet.MultiScaleTransition`) whose dense layers write into one buffer per scale.

    Each run of dense layers up to a transition (or the block's end) allocates, per scale,
    a buffer as wide as the scale will grow, copies the scale's input in once, and every
    unit writes its new channels into the next slice. Made by :func:`use_dense_buffers`.
    """

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        if not features or not _active(self, features[0]):
            for module in self:  # nn.Sequential's own forward, which is untyped
                features = module(features)
            return features
        modules = list(self)
        start = 0
        while start < len(modules):
            if isinstance(modules[start], MultiScaleTransition):
                features = modules[start](features)
                start += 1
                continue
            stop = start
            while stop < len(modules) and isinstance(modules[stop], MultiScaleDenseLayer):
                stop += 1
            run = [cast(MultiScaleDenseLayer, module) for module in modules[start:stop]]
            features = _dense_run(run, features)
            start = stop
        return features


def _dense_run(layers: Sequence[MultiScaleDenseLayer], features: list[Tensor]) -> list[Tensor]:
    """Run consecutive multi-scale dense layers with one buffer per scale, finest first."""
    if len(features) != len(layers[0].units) + layers[0].dropped:
        raise ValueError(
            f"expected {len(layers[0].units) + layers[0].dropped} scales, got {len(features)}"
        )
    # How wide each scale grows: scale s (counted from the coarsest) gets every layer's
    # growth at that scale while the layer still writes it.
    growth = [0] * len(features)
    for layer in layers:
        for i, unit in enumerate(layer.units):
            unit = cast(CrossScaleDenseUnit, unit)
            growth[len(features) - len(layer.units) + i] += unit.out_channels - unit.in_channels
    buffers, widths = [], []
    for x, grow in zip(features, growth, strict=True):
        buffer = _new_buffer(x, x.shape[1] + grow, x.shape[-2:])
        widths.append(_write(buffer, 0, x))
        buffers.append(buffer)
    for layer in layers:
        dropped = len(buffers) - len(layer.units)
        if dropped not in (0, 1) or dropped != layer.dropped:
            raise ValueError(f"expected {len(layer.units) + layer.dropped} scales")
        before = list(widths)  # every unit reads its inputs as they were before this layer
        for i, module in enumerate(layer.units):
            unit = cast(CrossScaleDenseUnit, module)
            j = i + dropped
            own = _run_on_prefix(unit.conv, buffers[j][:, : before[j]])
            pieces = [own]
            if unit.down is not None:
                pieces = [_run_on_prefix(unit.down, buffers[j - 1][:, : before[j - 1]]), own]
            widths[j] = _write(buffers[j], before[j], *pieces)
        buffers, widths = buffers[dropped:], widths[dropped:]
    return [buffer[:, :width] for buffer, width in zip(buffers, widths, strict=True)]


def use_dense_buffers(
    model: nn.Module, *, scale_blocks: bool = True, multiscale_blocks: bool = True
) -> int:
    """Switch, in place, every RANet :class:`~adanet.ScaleBlock` and every MSDNet block of
    ``model`` to its buffered class (the same modules and parameters; only ``forward``
    changes, and only in eval mode without gradients).

    Subclasses of those blocks are left alone, as they may have their own ``forward``.

    Args:
        model: Typically the copy :func:`adanet.optimize_for_inference` makes.
        scale_blocks: Switch RANet's :class:`~adanet.ScaleBlock` modules.
        multiscale_blocks: Switch MSDNet's blocks.

    Returns:
        How many blocks were switched.
    """
    switched = 0
    for module in model.modules():
        if scale_blocks and type(module) is ScaleBlock:
            module.__class__ = BufferedScaleBlock
            switched += 1
        elif multiscale_blocks and type(module) is nn.Sequential and _is_multiscale_block(module):
            module.__class__ = BufferedMultiScaleBlock
            switched += 1
    return switched


def _is_multiscale_block(module: nn.Sequential) -> bool:
    children = list(module)
    return (
        bool(children)
        and all(
            isinstance(child, (MultiScaleDenseLayer, MultiScaleTransition)) for child in children
        )
        and any(isinstance(child, MultiScaleDenseLayer) for child in children)
    )
