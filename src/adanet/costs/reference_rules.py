"""The originals' cost convention (their ``op_counter.py``), as rules per module type.

:func:`adanet.measure_exit_costs` with ``convention="reference"`` adds, for every leaf module
that runs, what the rule registered for its type returns; modules without a rule count
nothing (normalisation, interpolation, concatenation, and activations other than ReLU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = [
    "ReferenceCostRule",
    "kernel_area",
    "reference_cost_rule",
    "register_reference_cost_rule",
]

#: ``rule(module, input, output)`` → operations for that call.
ReferenceCostRule = Callable[[nn.Module, Tensor, Tensor], float]

_RULES: dict[type[nn.Module], ReferenceCostRule] = {}


def register_reference_cost_rule(module_type: type[nn.Module], rule: ReferenceCostRule) -> None:
    """Count ``module_type`` (and its subclasses without a rule of their own) with ``rule``
    in the reference convention.

    Raises:
        TypeError: ``module_type`` is not an ``nn.Module`` subclass, or ``rule`` is not
            callable.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    if not callable(rule):
        raise TypeError(f"rule must be callable, got {rule!r}")
    _RULES[module_type] = rule


def reference_cost_rule(module: nn.Module) -> ReferenceCostRule | None:
    """The rule registered for ``module``'s type or its nearest base class, if any."""
    for cls in type(module).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    return None


def kernel_area(kernel: int | Sequence[int]) -> int:
    """Window area of a pooling kernel given as ``k`` or ``(kh, kw)``."""
    if isinstance(kernel, int):
        return kernel * kernel
    return int(math.prod(kernel)) if len(kernel) > 1 else int(kernel[0]) ** 2


def _conv(module: nn.Module, x: Tensor, out: Tensor) -> float:
    assert isinstance(module, nn.Conv2d)
    kh, kw = module.kernel_size
    cin, cout = module.in_channels, module.out_channels
    return (cin * cout * kh * kw * out.shape[2] * out.shape[3]) / module.groups


def _per_input_element(module: nn.Module, x: Tensor, out: Tensor) -> float:
    return float(x.numel())


def _pool_window(module: nn.Module, x: Tensor, out: Tensor) -> float:
    assert isinstance(module, (nn.AvgPool2d, nn.MaxPool2d))
    area = kernel_area(module.kernel_size)
    return float(out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] * area)


def _linear(module: nn.Module, x: Tensor, out: Tensor) -> float:
    assert isinstance(module, nn.Linear)
    bias = module.bias.numel() if module.bias is not None else 0
    return float(x.shape[0] * (module.weight.numel() + bias))


register_reference_cost_rule(nn.Conv2d, _conv)
register_reference_cost_rule(nn.ReLU, _per_input_element)
register_reference_cost_rule(nn.AvgPool2d, _pool_window)
register_reference_cost_rule(nn.MaxPool2d, _pool_window)
register_reference_cost_rule(nn.AdaptiveAvgPool2d, _per_input_element)
register_reference_cost_rule(nn.Linear, _linear)
