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

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from adanet._device import module_device
from adanet._validation import parse_input_size
from adanet.blocks.dense_buffers import plain_dense_blocks
from adanet.costs.reference_rules import kernel_area, reference_cost_rule
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.walk import ExitWalk

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
    return 2 * kernel_area(args[1]) * int(math.prod(_first_shape(out_shape)))


def _per_input(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * int(math.prod(args[0]))


# Operators counted one operation per output element in the "actual" convention. Names
# starting with "_" are private overloads whose set changes between torch releases (batch
# norm is dispatched to one of three, depending on the version and the mode): each is used
# where this torch has it.
_ELEMENTWISE = (
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "native_group_norm",
    "native_layer_norm",
    "relu",
    "relu_",
    "gelu",
    "silu",
    "silu_",
    "hardswish",
    "hardswish_",
    "sigmoid",
    "add",
    "add_",
    "mul",
    "mul_",
)
# Operators whose absence would make the count silently wrong: batch norm needs at least one
# of its overloads; the rest are public. (Adaptive pooling to 1x1 runs as `mean`; to other
# sizes as the private `_adaptive_avg_pool2d`, counted where it exists.)
_BATCH_NORM = ("native_batch_norm", "_native_batch_norm_legit_no_training")
_REQUIRED = (
    "relu",
    "add",
    "mul",
    "mean",
    "upsample_bilinear2d",
    "max_pool2d_with_indices",
    "avg_pool2d",
)


def _aten(name: str) -> Any:
    return getattr(torch.ops.aten, name) if hasattr(torch.ops.aten, name) else None


@functools.lru_cache(maxsize=1)
def _actual_mapping() -> dict[Any, Callable[..., int]]:
    """The per-operator formulas, for the operators this torch provides.

    Raises:
        RuntimeError: This torch lacks operators the count needs.
    """
    missing = [name for name in _REQUIRED if _aten(name) is None]
    if all(_aten(name) is None for name in _BATCH_NORM):
        missing.append(" or ".join(_BATCH_NORM))
    if missing:
        raise RuntimeError(
            f"measure_exit_costs cannot count operations with torch {torch.__version__}: it "
            f"lacks the aten operators {missing}; install a torch that adanet supports"
        )
    mapping: dict[Any, Callable[..., int]] = {
        op: _per_output(1) for op in map(_aten, _ELEMENTWISE) if op is not None
    }
    mapping[torch.ops.aten.upsample_bilinear2d] = _per_output(4)
    mapping[torch.ops.aten.max_pool2d_with_indices] = _pool_window
    mapping[torch.ops.aten.avg_pool2d] = _pool_window
    for op in map(_aten, ("_adaptive_avg_pool2d", "mean")):
        if op is not None:
            mapping[op] = _per_input
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
        TypeError: ``model`` does not follow the protocol, ``input_size`` is not ints, or
            nothing could be counted (a network whose stages run outside PyTorch, such as an
            ONNX Runtime or int8 network; its recorded costs are its ``known_exit_costs``).
        ValueError: Unknown convention, or an input size the model does not accept.
        RuntimeError: The installed torch lacks an operator the "actual" count needs.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"measure_exit_costs needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    if not isinstance(convention, str) or convention not in ("actual", "reference"):
        raise ValueError(f"convention must be 'actual' or 'reference', got {convention!r}")
    shape = parse_input_size(input_size, model.in_channels)
    # The zero image takes the model's dtype: a half or bfloat16 model is measured as it is
    # (operation counts do not depend on the dtype).
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = weight.dtype if weight is not None else torch.get_default_dtype()
    x = torch.zeros((1, *shape), device=module_device(model), dtype=dtype)
    model.check_input(x)
    mapping = _actual_mapping()

    costs = _run_counted(model, x, convention, mapping)
    if all(c.macs == 0 and c.params == 0 for c in costs):
        # Nothing ran through PyTorch's operators: stages served by ONNX Runtime (an
        # OnnxRuntimeNetwork, an int8 model) compute where no counter sees. Zeros would be
        # read as "free"; say so instead.
        known = model.known_exit_costs(shape, convention)
        hint = (
            f"; the costs recorded for it are model.known_exit_costs({shape}, {convention!r}) "
            f"= {list(known)}"
            if known is not None
            else "; measure the network it was exported from instead"
        )
        raise TypeError(
            f"measure_exit_costs counted nothing in this {type(model).__name__}: its "
            f"computation runs outside PyTorch, where operations cannot be counted{hint}"
        )
    return costs


def _run_counted(
    model: EarlyExitNetwork,
    x: Tensor,
    convention: Convention,
    mapping: dict[Any, Callable[..., int]],
) -> list[ExitCost]:
    # Run the model exit by exit under the counters, recording the running totals.
    ops = [0.0]
    seen: set[int] = set()
    params = [0]

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if id(module) not in seen:
            seen.add(id(module))
            params[0] += sum(p.numel() for p in module.parameters(recurse=False))
        rule = reference_cost_rule(module) if convention == "reference" else None
        if rule is not None and inputs and isinstance(inputs[0], Tensor):
            ops[0] += rule(module, inputs[0], output)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(hook) for leaf in leaves]
    was_training = model.training
    model.eval()
    costs: list[ExitCost] = []
    try:
        counter = FlopCounterMode(display=False, custom_mapping=mapping)
        with torch.no_grad(), counter, plain_dense_blocks():
            walk = ExitWalk(model, x)
            for k, feature in enumerate(walk.features()):
                walk.head(feature)
                macs = ops[0] if convention == "reference" else counter.get_total_flops() / 2
                costs.append(ExitCost(exit=k, macs=float(macs), params=params[0]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return costs
