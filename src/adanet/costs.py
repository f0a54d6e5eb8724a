"""``measure_exit_costs``: what a sample leaving at each exit has paid, in MACs and parameters.

Two conventions:

``"actual"`` (the default) counts what runs: convolutions and linear layers as
multiply-accumulates from :class:`torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2),
plus one operation per element for normalisation, activations and elementwise
additions/multiplications, four per output element for bilinear interpolation (four weighted
taps), one per input element for average pooling and ``k*k`` per output element for pooling
windows. Concatenation moves memory and counts nothing.

``"reference"`` reproduces the originals' ``op_counter.py`` exactly, so figures compare with
published ones: Conv2d ``Cin*Cout*kh*kw*Hout*Wout/groups``, Linear ``in*out + out``, one op
per ReLU output element, ``AvgPool2d``/``MaxPool2d`` as ``C*Hout*Wout*k*k``,
``AdaptiveAvgPool2d`` as its input's element count, and nothing for normalisation,
interpolation or concatenation.

Either way the value at exit ``k`` is the running total after exit ``k``'s head, in execution
order: the stem, every block run so far and every earlier head, for one image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ._device import module_device
from .protocol import EarlyExitNetwork

__all__ = ["Convention", "ExitCost", "measure_exit_costs"]

Convention = Literal["actual", "reference"]


@dataclass(frozen=True)
class ExitCost:
    """The cumulative cost of leaving at one exit, for one image.

    Attributes:
        exit: The exit's index.
        macs: Multiply-accumulates (and counted elementwise operations) up to and
            including this exit's head.
        params: Parameters of every module run up to and including this exit's head.
    """

    exit: int
    macs: float
    params: int


def _input_shape(model: EarlyExitNetwork, input_size: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_size, int):
        return (model.in_channels, input_size, input_size)
    size = tuple(int(v) for v in input_size)
    if len(size) == 2:
        return (model.in_channels, *size)
    if len(size) == 3:
        return size
    raise ValueError(f"input_size must be S, (H, W) or (C, H, W), got {input_size!r}")


def _kernel_area(kernel: int | Sequence[int]) -> int:
    if isinstance(kernel, int):
        return kernel * kernel
    return int(math.prod(kernel)) if len(kernel) > 1 else int(kernel[0]) ** 2


def _reference_ops(module: nn.Module, x: Tensor, out: Tensor) -> float:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return (
            module.in_channels * module.out_channels * kh * kw * out.shape[2] * out.shape[3]
        ) / module.groups
    if isinstance(module, nn.ReLU):
        return float(x.numel())
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        area = _kernel_area(module.kernel_size)
        return float(out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] * area)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return float(x.numel())
    if isinstance(module, nn.Linear):
        bias = module.bias.numel() if module.bias is not None else 0
        return float(x.shape[0] * (module.weight.numel() + bias))
    return 0.0


def _first_shape(shape: Any) -> Any:
    # An op with several outputs (batch norm) reports a tuple of shapes.
    if isinstance(shape, tuple) and shape and isinstance(shape[0], (tuple, torch.Size)):
        return shape[0]
    return shape


def _per_output(factor: int) -> Callable[..., int]:
    def formula(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # FlopCounterMode counts FLOPs (2 per MAC): report twice the operation count.
        return 2 * factor * int(math.prod(_first_shape(out_shape)))

    return formula


def _pool_window(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * _kernel_area(args[1]) * int(math.prod(_first_shape(out_shape)))


def _per_input(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * int(math.prod(args[0]))


def _actual_mapping() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    elementwise = [
        aten.native_batch_norm,
        aten._native_batch_norm_legit,
        aten._native_batch_norm_legit_no_training,
        aten.native_group_norm,
        aten.native_layer_norm,
        aten.relu,
        aten.relu_,
        aten.gelu,
        aten.silu,
        aten.silu_,
        aten.hardswish,
        aten.hardswish_,
        aten.sigmoid,
        aten.add,
        aten.add_,
        aten.mul,
        aten.mul_,
    ]
    mapping: dict[Any, Callable[..., int]] = {op: _per_output(1) for op in elementwise}
    mapping[aten.upsample_bilinear2d] = _per_output(4)
    mapping[aten.max_pool2d_with_indices] = _pool_window
    mapping[aten.avg_pool2d] = _pool_window
    mapping[aten._adaptive_avg_pool2d] = _per_input
    mapping[aten.mean] = _per_input
    return mapping


def measure_exit_costs(
    model: nn.Module,
    input_size: int | Sequence[int],
    convention: Convention = "actual",
) -> list[ExitCost]:
    """Measure the cumulative cost of each exit for one image.

    Works for any network that follows adanet's early-exit protocol
    (:class:`~adanet.EarlyExitNetwork`). The model runs once, in eval mode, on a zero image
    of ``input_size`` on its own device; its training flag is restored afterwards.

    Args:
        model: The network.
        input_size: ``S`` (square, the model's channels), ``(H, W)`` or ``(C, H, W)``.
        convention: ``"actual"`` or ``"reference"`` (see the module docs).

    Returns:
        One :class:`ExitCost` per exit, in exit order.

    Raises:
        TypeError: ``model`` does not follow the protocol.
        ValueError: Unknown convention or bad input size.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"measure_exit_costs needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    if convention not in ("actual", "reference"):
        raise ValueError(f"convention must be 'actual' or 'reference', got {convention!r}")
    shape = _input_shape(model, input_size)
    x = torch.zeros((1, *shape), device=module_device(model))
    model.check_input(x)

    ops = [0.0]
    seen: set[int] = set()
    params = [0]

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if id(module) not in seen:
            seen.add(id(module))
            params[0] += sum(p.numel() for p in module.parameters(recurse=False))
        if convention == "reference" and inputs and isinstance(inputs[0], Tensor):
            ops[0] += _reference_ops(module, inputs[0], output)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(hook) for leaf in leaves]
    was_training = model.training
    model.eval()
    costs: list[ExitCost] = []
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_actual_mapping())
        with torch.no_grad(), counter:
            state = model.begin(x)
            for k in range(model.num_exits):
                feature, state = model.advance(state, k)
                model.exits[k](feature)
                macs = ops[0] if convention == "reference" else counter.get_total_flops() / 2
                costs.append(ExitCost(exit=k, macs=float(macs), params=params[0]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return costs
