"""Memory-efficient training by shared-storage recomputation (Pleiss et al., 2017).

A dense layer's convolutions read the concatenation of every earlier layer's new channels,
and (pre-activation) its norm-and-activation. Autograd would keep that concatenation, and
the normalised copy of it, alive for backward: per layer, a tensor as wide as the whole
block so far, which makes the activation memory of a dense block quadratic in its depth.
Following "Memory-Efficient Implementation of DenseNets" (G. Pleiss, D. Chen, G. Huang,
T. Li, L. van der Maaten, K. Q. Weinberger, 2017, arXiv:1707.06990), backward here
recomputes only the cheap parts: the concatenation and the norm → activation between two
convolutions. It never recomputes a convolution, unlike ``torch.utils.checkpoint`` over the
whole bottleneck, which roughly doubles the convolution work of a step.

The unit of recomputation is :class:`_PreparedConv`: ``conv(prepare(*inputs))`` where
``prepare`` is ``cat`` followed by the norm and activation layers that precede ``conv`` in the
block. It saves its inputs (the pieces, which the block keeps anyway as its features), not
their concatenation or its normalised copy; backward rebuilds ``prepare(*inputs)`` once,
runs the convolution's backward on it (``aten.convolution_backward``, as autograd does) and
back-propagates through the rebuilt ``prepare``: for BatchNorm → ReLU, the layers of both
orderings by default, with their two backward kernels directly; otherwise through a graph
of the recomputation.

Pleiss et al. write each layer's concatenation and its normalised copy into two storages
shared by the whole block, so that at most one of each is alive. Here each is a temporary of
the layer that needs it (the forward's is freed once the convolution has run, backward's once
that layer's gradients are computed), which bounds the memory the same way: only one layer's
concatenation is alive at a time, and the allocator reuses the freed block for the next.

BatchNorm layers inside ``prepare`` update their running statistics in the forward only: the
recomputation uses the functional batch norm with the batch's statistics (same input, same
kernel, so the same values as the forward) and no running statistics. Other layers with
buffers (a user's normalisation) get their buffers restored after the recomputation. So
each step updates every running statistic exactly once.

Backward runs under the forward's autocast state, like ``torch.amp.custom_bwd``. It is not
itself differentiable (``once_differentiable``): double backward needs the default path.

Features whose pieces are known travel either as lists of tensors (RANet's
:class:`~adanet.blocks.ScaleBlock`), or as a tensor that remembers the pieces it was
concatenated from (:func:`concat_remembering`; MSDNet's layers pass tensors between
modules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "concat_remembering",
    "efficient_training",
    "pieces_of",
    "run_from_pieces",
]

# The attribute under which concat_remembering stores (version at creation, pieces).
_PIECES_ATTRIBUTE = "_adanet_pieces"


def efficient_training(memory_efficient: bool, module: nn.Module) -> bool:
    """Whether ``module`` should take the memory-efficient path now: asked for, training, and
    building a graph (eval and ``no_grad`` run the plain path)."""
    return memory_efficient and module.training and torch.is_grad_enabled()


def concat_remembering(pieces: Sequence[Tensor]) -> Tensor:
    """``torch.cat(pieces, dim=1)``, remembering ``pieces`` so that a memory-efficient
    consumer (:func:`pieces_of`) saves the pieces for backward instead of this copy.

    The concatenation itself is then held by nobody once its consumers have run, so it is
    freed: only the pieces, each layer's new channels, stay alive.
    """
    out = torch.cat(list(pieces), dim=1)
    setattr(out, _PIECES_ATTRIBUTE, (out._version, list(pieces)))
    return out


def pieces_of(x: Tensor) -> list[Tensor]:
    """The pieces ``x`` was concatenated from by :func:`concat_remembering`, or ``[x]``.

    A tensor modified in place since its concatenation (its version changed) no longer
    equals its pieces, so it is returned whole.
    """
    remembered: tuple[int, list[Tensor]] | None = getattr(x, _PIECES_ATTRIBUTE, None)
    if remembered is None or remembered[0] != x._version:
        return [x]
    return remembered[1]


def _batch_statistics_norm(module: nn.Module) -> bool:
    # A BatchNorm normalising with the batch's statistics: its recomputation can be the
    # functional batch norm without running statistics, which leaves the buffers alone.
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and (
        module.training or module.running_mean is None
    )


def _recompute(module: nn.Module, x: Tensor) -> Tensor:
    if _batch_statistics_norm(module):
        norm = cast(nn.modules.batchnorm._BatchNorm, module)
        return F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
    out: Tensor = module(x)
    return out


@contextlib.contextmanager
def _restoring_buffers(modules: Sequence[nn.Module]) -> Iterator[None]:
    # Other modules with state (a user's norm layer) run a second time in the recomputation;
    # restoring their buffers keeps them updated exactly once per step.
    saved = [
        (b, b.detach().clone())
        for m in modules
        if not _batch_statistics_norm(m)
        for b in m.buffers()
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _prepare(
    cheap: Sequence[nn.Module], inputs: Sequence[Tensor], *, recomputing: bool = False
) -> Tensor:
    x = inputs[0] if len(inputs) == 1 else torch.cat(list(inputs), dim=1)
    for module in cheap:
        if getattr(module, "inplace", False) and any(x is t for t in inputs):
            x = x.clone()  # an in-place layer must not overwrite a saved input
        x = _recompute(module, x) if recomputing else module(x)
    return x


def _conv_backward(
    conv: nn.Conv2d, grad_out: Tensor, prepared: Tensor, mask: list[bool]
) -> tuple[Tensor, Tensor, Tensor]:
    # The gradients autograd's own convolution node would compute, from the same kernel.
    # Under autocast the forward convolution ran in grad_out's dtype on cast copies of its
    # input and weight: the backward does the same, and returns each gradient in the dtype
    # of what it is the gradient of, as autograd's cast nodes would.
    dtype = grad_out.dtype
    weight = conv.weight
    grad_prepared, grad_weight, grad_bias = torch.ops.aten.convolution_backward.default(
        grad_out,
        prepared.to(dtype),
        weight.to(dtype),
        None if conv.bias is None else [conv.out_channels],
        conv.stride,
        conv.padding,
        conv.dilation,
        False,
        [0] * len(conv.stride),
        conv.groups,
        mask,
    )
    if dtype != weight.dtype:
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(weight.dtype)
    if grad_prepared is not None:
        grad_prepared = grad_prepared.to(prepared.dtype)
    return grad_prepared, grad_weight, grad_bias


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    # torch >= 2.4 takes the device type; torch 2.3 has one function per device.
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except TypeError:  # pragma: no cover - torch 2.3
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


class _PreparedConv(torch.autograd.Function):
    """``conv(prepare(*inputs))`` saving ``inputs``, recomputing ``prepare`` in backward.

    ``tensors`` are the ``num_inputs`` inputs, then the parameters of the ``cheap`` modules,
    then the convolution's weight (and bias): passed in so that autograd returns their
    gradients through this function.
    """

    @staticmethod
    def forward(
        ctx: Any,
        cheap: Sequence[nn.Module],
        conv: nn.Conv2d,
        num_inputs: int,
        *tensors: Tensor,
    ) -> Tensor:
        inputs = tensors[:num_inputs]
        # Autograd is off inside forward: neither the concatenation nor the normalised copy
        # is kept, and the norm layers update their running statistics here, once.
        prepared = _prepare(cheap, inputs)
        out: Tensor = conv(prepared)
        ctx.cheap = cheap
        ctx.conv = conv
        ctx.num_inputs = num_inputs
        # Backward recomputes under the same autocast state (as torch.amp.custom_bwd does).
        ctx.device_type = inputs[0].device.type
        ctx.autocast = _autocast_state(ctx.device_type)
        ctx.save_for_backward(*inputs)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        cheap: Sequence[nn.Module] = ctx.cheap
        conv: nn.Conv2d = ctx.conv
        cheap_params = [p for m in cheap for p in m.parameters()]
        front = ctx.num_inputs + len(cheap_params)  # inputs and cheap parameters
        needs: tuple[bool, ...] = ctx.needs_input_grad[3:]
        inputs = [
            t.detach().requires_grad_(need)
            for t, need in zip(ctx.saved_tensors, needs, strict=False)
        ]
        has_bias = conv.bias is not None
        grads: list[Tensor | None] = [None] * front
        chosen = [i for i in range(front) if needs[i]]
        mask = [bool(chosen), needs[front], has_bias and needs[front + 1]]
        if not cheap:
            # Only a concatenation to undo: its gradient is a split, no graph needed.
            prepared = _prepare(cheap, ctx.saved_tensors)
            grad_prepared, grad_weight, grad_bias = _conv_backward(conv, grad_out, prepared, mask)
            if chosen:
                _split_into(grads, grad_prepared, inputs, needs)
        elif _is_batch_norm_relu(cheap) and not ctx.autocast[0]:
            grad_weight, grad_bias = _batch_norm_relu_backward(
                ctx, grad_out, mask, (grads, inputs, needs)
            )
        else:
            sources = [*inputs, *cheap_params]
            grad_weight, grad_bias = _recomputed_backward(
                ctx, grad_out, mask, (grads, inputs, chosen, sources)
            )
        tail = [grad_weight, grad_bias] if has_bias else [grad_weight]
        return (None, None, None, *grads, *tail)


def _batch_norm_relu_backward(
    ctx: Any,
    grad_out: Tensor,
    mask: list[bool],
    into: tuple[list[Tensor | None], Sequence[Tensor], Sequence[bool]],
) -> tuple[Tensor, Tensor]:
    """Backward of ``conv(relu(batch_norm(cat(inputs))))``, the common case (both orderings of
    the default layers), with the two backward kernels called directly: no graph is built for
    the recomputation. Fills the inputs' and the norm's gradients into ``grads``.

    Returns:
        The convolution's weight and bias gradients.
    """
    grads, inputs, needs = into
    norm = cast(nn.modules.batchnorm._BatchNorm, ctx.cheap[0])
    joined = _prepare((), ctx.saved_tensors)
    normed, mean, invstd = torch.ops.aten.native_batch_norm.default(
        joined, norm.weight, norm.bias, None, None, True, 0.0, norm.eps
    )
    activated = normed.relu_()
    grad_prepared, grad_weight, grad_bias = _conv_backward(ctx.conv, grad_out, activated, mask)
    if not mask[0]:
        return grad_weight, grad_bias
    n = ctx.num_inputs  # then the norm's weight and bias (affine: checked)
    want = [any(needs[:n]), needs[n], needs[n + 1]]
    grad_normed = torch.ops.aten.threshold_backward.default(grad_prepared, activated, 0)
    grad_joined, grad_norm_weight, grad_norm_bias = (
        torch.ops.aten.native_batch_norm_backward.default(
            grad_normed, joined, norm.weight, None, None, mean, invstd, True, norm.eps, want
        )
    )
    if want[0]:
        _split_into(grads, grad_joined, inputs, needs)
    grads[n] = grad_norm_weight if want[1] else None
    grads[n + 1] = grad_norm_bias if want[2] else None
    return grad_weight, grad_bias


def _recomputed_backward(
    ctx: Any,
    grad_out: Tensor,
    mask: list[bool],
    into: tuple[list[Tensor | None], Sequence[Tensor], Sequence[int], Sequence[Tensor]],
) -> tuple[Tensor, Tensor]:
    """Backward of ``conv(prepare(inputs))`` for any cheap layers: ``prepare`` is recomputed
    with autograd under the forward's autocast state, and the gradients of the ``chosen``
    ``sources`` (inputs, then the cheap layers' parameters) are filled into ``grads``.

    Returns:
        The convolution's weight and bias gradients.
    """
    grads, inputs, chosen, sources = into
    # Buffers are restored only after back-propagating through the recomputation, whose
    # graph may hold them.
    enabled, dtype = ctx.autocast
    with _restoring_buffers(ctx.cheap):
        with (
            torch.enable_grad(),
            torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled),
        ):
            prepared = _prepare(ctx.cheap, inputs, recomputing=True)
        grad_prepared, grad_weight, grad_bias = _conv_backward(
            ctx.conv, grad_out, prepared.detach(), mask
        )
        if chosen:
            found = torch.autograd.grad(
                prepared, [sources[i] for i in chosen], grad_prepared, allow_unused=True
            )
            for i, grad in zip(chosen, found, strict=True):
                grads[i] = grad
    return grad_weight, grad_bias


def _is_batch_norm_relu(cheap: Sequence[nn.Module]) -> bool:
    return (
        len(cheap) == 2
        and _batch_statistics_norm(cheap[0])
        and type(cheap[1]) is nn.ReLU
        and cast(nn.modules.batchnorm._BatchNorm, cheap[0]).affine
    )


def _split_into(
    grads: list[Tensor | None], joined: Tensor, inputs: Sequence[Tensor], needs: Sequence[bool]
) -> None:
    # The gradient of a concatenation, split back into its pieces' (views, no copies).
    start = 0
    for i, piece in enumerate(inputs):
        if needs[i]:
            grads[i] = joined.narrow(1, start, piece.shape[1])
        start += piece.shape[1]


def _leaves(module: nn.Module) -> list[nn.Module]:
    # A Sequential (a bottleneck, a Conv2dNormActivation) flattened into its layers.
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def run_from_pieces(block: nn.Module, pieces: Sequence[Tensor]) -> Tensor:
    """Run ``block`` (a conv / norm / activation ``Sequential``) on the concatenation of
    ``pieces``, keeping for backward only the pieces and each convolution's output.

    Every convolution becomes a :class:`_PreparedConv` whose ``prepare`` is the
    concatenation (for the first) or nothing, followed by the norm and activation layers
    between it and the previous convolution; the layers after the last convolution run as
    usual. Pre-activation (norm → act → conv) and post-activation (conv → norm → act)
    bottlenecks are both covered.

    Returns:
        ``block(torch.cat(pieces, dim=1))``, with the same value and gradients.
    """
    inputs = list(pieces)
    cheap: list[nn.Module] = []
    for layer in _leaves(block):
        if isinstance(layer, nn.Conv2d) and isinstance(layer.padding, tuple):
            params = [p for m in cheap for p in m.parameters()]
            conv_params = [layer.weight] if layer.bias is None else [layer.weight, layer.bias]
            out: Tensor = _PreparedConv.apply(
                tuple(cheap), layer, len(inputs), *inputs, *params, *conv_params
            )
            inputs, cheap = [out], []
        else:
            cheap.append(layer)
    return _prepare(cheap, inputs)
