"""Independent transcription of the original MSDNet ``op_counter.py``, used only as a test
oracle.

The original wraps the ``forward`` of every leaf module, counts each call with the formulas
below, and records the running totals whenever a ``Linear`` layer (an exit's classifier) runs.
This version keeps those formulas and that bookkeeping, without global variables and prints;
it raises on leaf types the original does not know, as the original does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["measure_model"]

_ZERO_COST = ("BatchNorm2d", "Dropout2d", "Dropout")


def _layer_ops(layer: nn.Module, x: Tensor) -> float:
    name = type(layer).__name__
    if name == "Conv2d":
        assert isinstance(layer, nn.Conv2d)
        out_h = int((x.size(2) + 2 * layer.padding[0] - layer.kernel_size[0]) / layer.stride[0] + 1)
        out_w = int((x.size(3) + 2 * layer.padding[1] - layer.kernel_size[1]) / layer.stride[1] + 1)
        return (
            layer.in_channels
            * layer.out_channels
            * layer.kernel_size[0]
            * layer.kernel_size[1]
            * out_h
            * out_w
            / layer.groups
        )
    if name == "ReLU":
        return float(x.numel())
    if name in ("AvgPool2d", "MaxPool2d"):
        kernel: Any = layer.kernel_size
        padding: Any = layer.padding
        stride: Any = layer.stride
        in_w = x.size(2)
        out = int((in_w + 2 * padding - kernel) / stride + 1)
        return float(x.size(0) * x.size(1) * out * out * kernel * kernel)
    if name == "AdaptiveAvgPool2d":
        return float(x.size(0) * x.size(1) * x.size(2) * x.size(3))
    if name == "Linear":
        assert isinstance(layer, nn.Linear)
        return float(x.size(0) * (layer.weight.numel() + layer.bias.numel()))
    if name in _ZERO_COST:
        return 0.0
    raise TypeError(f"unknown layer type: {name}")


def measure_model(model: nn.Module, height: int, width: int) -> tuple[list[float], list[int]]:
    """Count the cumulative operations and parameters at each exit for one zero image.

    Returns:
        The operation counts and the parameter counts recorded at each ``Linear`` layer, in
        the order they ran.
    """
    totals = {"ops": 0.0, "params": 0}
    cls_ops: list[float] = []
    cls_params: list[int] = []
    wrapped: list[nn.Module] = []

    def wrap(module: nn.Module) -> None:
        old_forward = module.forward

        def counted_forward(x: Tensor) -> Any:
            totals["ops"] += _layer_ops(module, x)
            totals["params"] += sum(p.numel() for p in module.parameters())
            if type(module).__name__ == "Linear":
                cls_ops.append(totals["ops"])
                cls_params.append(int(totals["params"]))
            return old_forward(x)

        module.forward = counted_forward
        wrapped.append(module)

    for module in model.modules():
        if next(module.children(), None) is None:
            wrap(module)
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
        model.train(was_training)
    finally:
        for module in wrapped:
            del module.forward  # back to the class's forward
    return cls_ops, cls_params
