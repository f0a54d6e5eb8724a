"""Tests for adanet.deploy.onnx.quantized_state on two hand-built QDQ stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from adanet.deploy.onnx.quantized_state import pass_state_quantized

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto


def _scalars(prefix: str, scale: float) -> list[Any]:
    return [
        numpy_helper.from_array(np.array(scale, np.float32), f"{prefix}_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), f"{prefix}_zero"),
    ]


def _qdq(prefix: str, value: str, out: str) -> list[Any]:
    """QuantizeLinear then DequantizeLinear of ``value`` into ``out``."""
    args = [f"{prefix}_scale", f"{prefix}_zero"]
    return [
        helper.make_node("QuantizeLinear", [value, *args], [f"{prefix}_q"]),
        helper.make_node("DequantizeLinear", [f"{prefix}_q", *args], [out]),
    ]


def _stages(next_scale: float) -> list[Any]:
    """Stage 0: ``state = qdq(2x)``, ``logits = state + 1``; stage 1 quantizes ``state``
    again (with ``next_scale``) and returns ``logits = qdq(state) * 3``."""
    f32 = TensorProto.FLOAT
    first = helper.make_graph(
        [
            helper.make_node("Add", ["x", "x"], ["doubled"]),
            *_qdq("a", "doubled", "state"),
            helper.make_node("Add", ["state", "one"], ["logits"]),
        ],
        "stage0",
        [helper.make_tensor_value_info("x", f32, [None, 4])],
        [
            helper.make_tensor_value_info("logits", f32, [None, 4]),
            helper.make_tensor_value_info("state", f32, [None, 4]),
        ],
        [*_scalars("a", 0.05), numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    second = helper.make_graph(
        [
            *_qdq("b", "state", "restored"),
            helper.make_node("Mul", ["restored", "three"], ["logits"]),
        ],
        "stage1",
        [helper.make_tensor_value_info("state", f32, [None, 4])],
        [helper.make_tensor_value_info("logits", f32, [None, 4])],
        [*_scalars("b", next_scale), numpy_helper.from_array(np.array(3.0, np.float32), "three")],
    )
    opset = [helper.make_opsetid("", 17)]
    return [helper.make_model(graph, opset_imports=opset) for graph in (first, second)]


def _run(stages: list[Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sessions = [
        onnxruntime.InferenceSession(s.SerializeToString(), providers=["CPUExecutionProvider"])
        for s in stages
    ]
    logits0, state = sessions[0].run(None, {"x": x})
    (logits1,) = sessions[1].run(None, {"state": state})
    return logits0, state, logits1


def test_a_state_both_stages_quantize_alike_is_passed_as_uint8() -> None:
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(6, 4)
    expected = _run(_stages(0.05), x)
    stages = _stages(0.05)
    assert pass_state_quantized(stages) == [["state"]]
    for stage in stages:
        onnx.checker.check_model(stage)
    (out,) = [o for o in stages[0].graph.output if o.name == "state"]
    (into,) = stages[1].graph.input
    assert out.type.tensor_type.elem_type == TensorProto.UINT8
    assert into.type.tensor_type.elem_type == TensorProto.UINT8
    # Stage 1 no longer quantizes what it receives.
    assert all(n.op_type != "QuantizeLinear" for n in stages[1].graph.node)
    logits0, state, logits1 = _run(stages, x)
    assert state.dtype == np.uint8
    np.testing.assert_allclose(logits0, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(logits1, expected[2], rtol=0, atol=1e-6)


def test_a_state_quantized_differently_stays_float() -> None:
    stages = _stages(0.07)  # stage 1 was calibrated to another scale
    assert pass_state_quantized(stages) == [[]]
    assert stages[1].graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(n.op_type == "QuantizeLinear" for n in stages[1].graph.node)
