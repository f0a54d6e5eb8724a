"""Shape buckets through ONNX Runtime: padding never changes a real sample's logits, exit or
cost when the stages are ONNX Runtime sessions (:class:`OnnxRuntimeNetwork`)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import adanet
from adanet.deploy.onnx import OnnxRuntimeNetwork

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


@pytest.mark.parametrize("scheme", ["auto", "pow2", 16])
def test_padding_is_invisible_in_onnx_runtime(exported: Any, scheme: Any) -> None:
    network = OnnxRuntimeNetwork(exported.directory, threads=1)
    x = torch.randn(45, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    exact = adanet.early_exit(network, x, exported.policy, buckets="exact")
    padded = adanet.early_exit(network, x, exported.policy, buckets=scheme)
    assert len(set(exact.exit_index.tolist())) > 1  # some samples left early: compaction ran
    # The policy was calibrated on other images, so no confidence here sits on a threshold
    # and batch-size rounding cannot move a decision.
    assert torch.equal(padded.exit_index, exact.exit_index)
    torch.testing.assert_close(padded.logits, exact.logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(padded.cost, exact.cost)
