"""Quantized state between int8 stages: a state tensor stage ``k`` quantizes on its way out
and stage ``k + 1`` quantizes again on its way in is handed over as uint8 instead.

Works on ONNX ``ModelProto`` graphs in QDQ format, as ONNX Runtime's static quantizer writes
them (:func:`adanet.deploy.onnx.quantize.quantize_onnx` calls it). Needs ``onnx`` (the ``onnx``
extra), imported when called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pass_state_quantized"]

_SCALE_TOLERANCE = 1e-5  # two calibrations of the same tensor differ by float rounding only


def _scalar(graph: Any, name: str) -> float | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            value = numpy_helper.to_array(init)
            return float(value.reshape(-1)[0]) if value.size == 1 else None
    return None


def _quantized_outputs(graph: Any, inherited: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Graph outputs that are a DequantizeLinear of a per-tensor quantized value (mapped to
    that node), or an Identity of an input already passed quantized (mapped to the Identity)."""
    producers = {out: node for node in graph.node for out in node.output}
    fixed = {value.name for value in graph.input} | {init.name for init in graph.initializer}
    found: dict[str, Any] = {}
    for output in graph.output:
        node = producers.get(output.name)
        if node is None:
            continue
        if node.op_type == "DequantizeLinear" and len(node.input) == 3:
            # The quantized value takes the state's name: it must be a tensor of this graph.
            if (
                node.input[0] not in fixed
                and _scalar(graph, node.input[1]) is not None
                and _scalar(graph, node.input[2]) is not None
            ):
                found[output.name] = node
        elif node.op_type == "Identity" and node.input[0] in inherited:
            found[output.name] = node
    return found


def _params(
    graph: Any, node: Any, inherited: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    if node.op_type == "Identity":
        return inherited[node.input[0]]
    scale, zero = _scalar(graph, node.input[1]), _scalar(graph, node.input[2])
    assert scale is not None and zero is not None  # checked by _quantized_outputs
    return scale, zero


def _input_takes_quantized(graph: Any, name: str, scale: float, zero: float) -> bool:
    """Whether every reader of input ``name`` is a QuantizeLinear with these parameters or an
    Identity to a graph output (a state passed on unchanged)."""
    outputs = {output.name for output in graph.output}
    readers = [node for node in graph.node if name in node.input]
    if not readers:
        return False
    for node in readers:
        if node.op_type == "Identity" and node.output[0] in outputs:
            continue
        if node.op_type != "QuantizeLinear" or len(node.input) != 3:
            return False
        their_scale, their_zero = _scalar(graph, node.input[1]), _scalar(graph, node.input[2])
        if their_scale is None or their_zero is None or their_zero != zero:
            return False
        if abs(their_scale - scale) > _SCALE_TOLERANCE * abs(scale):
            return False
    return True


def _rename(graph: Any, old: str, new: str) -> None:
    for info in graph.value_info:
        if info.name == old:
            info.name = new
    for node in graph.node:
        for index, value in enumerate(node.input):
            if value == old:
                node.input[index] = new
        for index, value in enumerate(node.output):
            if value == old:
                node.output[index] = new


def _dequantize_instead(graph: Any, node: Any, scale: float, zero: float) -> None:
    """Turn an Identity that passes a uint8 input on into a DequantizeLinear of it."""
    import numpy as np
    from onnx import numpy_helper

    prefix = node.output[0]
    graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), f"{prefix}__s"))
    graph.initializer.append(numpy_helper.from_array(np.array(zero, np.uint8), f"{prefix}__z"))
    node.op_type = "DequantizeLinear"
    node.input.extend([f"{prefix}__s", f"{prefix}__z"])


def _set_uint8(value_info: Any) -> None:
    from onnx import TensorProto

    value_info.type.tensor_type.elem_type = TensorProto.UINT8


def pass_state_quantized(stages: list[Any]) -> list[list[str]]:
    """Hand state tensors from stage to stage as uint8 instead of dequantizing them at the end
    of one stage and quantizing them again at the start of the next.

    A state tensor qualifies when stage ``k`` returns it through a per-tensor DequantizeLinear
    and stage ``k + 1`` reads it only through QuantizeLinear nodes of the same scale and zero
    point (both were calibrated on the same values) or passes it on unchanged. Its
    DequantizeLinear output is then replaced by the quantized tensor, and the next stage's
    QuantizeLinear readers are removed. The ModelProtos are changed in place.

    Returns:
        Per stage but the last, the names of the state tensors now passed as uint8.
    """
    changed: list[list[str]] = []
    inherited: dict[str, tuple[float, float]] = {}  # stage inputs that arrive quantized
    for k in range(len(stages) - 1):
        here, after = stages[k].graph, stages[k + 1].graph
        candidates = _quantized_outputs(here, inherited)
        passed: dict[str, tuple[float, float]] = {}
        names: list[str] = []
        state_outputs = [output.name for output in here.output][1:]  # logits come first
        for name in state_outputs:
            node = candidates.get(name)
            if node is None:
                continue
            scale, zero = _params(here, node, inherited)
            if not _input_takes_quantized(after, name, scale, zero):
                if node.op_type == "Identity":  # a uint8 input the next stage wants in float
                    _dequantize_instead(here, node, scale, zero)
                continue
            if node.op_type == "DequantizeLinear":
                # Stage k returns the quantized value under the state's name; its own readers
                # of the dequantized value read a renamed copy.
                internal = f"{name}__dequantized"
                _rename(here, name, internal)
                node.output[0] = internal
                _rename(here, node.input[0], name)
            _set_uint8(next(o for o in here.output if o.name == name))
            for reader in [n for n in after.node if name in n.input]:
                if reader.op_type == "QuantizeLinear":
                    _rename(after, reader.output[0], name)
                    after.node.remove(reader)
            _set_uint8(next(i for i in after.input if i.name == name))
            passed[name] = (scale, zero)
            names.append(name)
        inherited = passed
        changed.append(names)
    return changed
