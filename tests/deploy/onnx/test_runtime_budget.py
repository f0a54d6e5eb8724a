"""A per-batch budget and an online controller through ``OnnxRuntimeNetwork``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import adanet
from adanet.calibration import OnlineController
from adanet.deploy.onnx import OnnxRuntimeNetwork

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


@pytest.fixture(scope="module")
def network(exported: Any) -> OnnxRuntimeNetwork:
    return OnnxRuntimeNetwork(exported.directory, threads=1)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_budget_holds(exported: Any, network: OnnxRuntimeNetwork) -> None:
    x = _images(48, seed=21)
    plain = adanet.early_exit(network, x, exported.policy)
    costs = network.known_exit_costs((3, 32, 32), "actual")
    assert costs is not None
    for share in (0.35, 0.6, 0.9):
        budget = max(float(plain.cost.sum()) * share, 48 * costs[0])
        ours = adanet.early_exit(network, x, exported.policy, budget=budget)
        assert float(ours.cost.sum()) <= budget  # MAC counts: summed exactly
        assert float(ours.cost.sum()) < float(plain.cost.sum())  # it did bind
    same = adanet.early_exit(network, x, exported.policy, budget=float(plain.cost.sum()))
    assert torch.equal(same.exit_index, plain.exit_index)


def test_controller_runs_and_learns_through_onnx_runtime(
    exported: Any, network: OnnxRuntimeNetwork
) -> None:
    with torch.no_grad():
        calibration = torch.stack(exported.model(_images(128, seed=22)))
    costs = network.known_exit_costs((3, 32, 32), "actual")
    assert costs is not None
    controller = OnlineController(calibration, costs, max_accuracy_drop=0.1, audit_share=0.25)
    for seed in range(3):
        result = adanet.early_exit(network, _images(16, seed=30 + seed), controller)
        controller.observe(result)
    assert controller.images_seen == 48 and controller.stats()["audits"] > 0
