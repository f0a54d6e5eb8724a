"""``OnnxRuntimeNetwork``: exported fp32 stages behind the early-exit protocol match the model."""

from __future__ import annotations

from pathlib import Path
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


def _images(n: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_is_an_early_exit_network_in_eval_mode(network: OnnxRuntimeNetwork) -> None:
    assert isinstance(network, adanet.EarlyExitNetwork)
    assert network.num_exits == 3 and network.input_shape == (3, 32, 32)
    network.train()  # the stages have no train mode: it stays in eval mode
    assert not network.training


def test_all_exits_match_the_torch_model(exported: Any, network: OnnxRuntimeNetwork) -> None:
    x = _images(24)
    with torch.no_grad():
        expected = exported.model(x)
    got = network(x)
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_early_exit_matches_eager_early_exit(exported: Any, network: OnnxRuntimeNetwork) -> None:
    x = _images(64, seed=4)
    eager = adanet.early_exit(exported.model, x, exported.policy)
    ours = adanet.early_exit(network, x, exported.policy)
    # The policy was calibrated on other images; these still leave at several exits.
    assert len(set(eager.exit_index.tolist())) > 1
    assert torch.equal(ours.exit_index, eager.exit_index)
    torch.testing.assert_close(ours.logits, eager.logits, atol=1e-4, rtol=1e-4)
    # Costs are the torch model's MACs, recorded in the manifest.
    torch.testing.assert_close(ours.cost, eager.cost)


def test_stage_feeds_name_the_inputs_each_stage_reads(network: OnnxRuntimeNetwork) -> None:
    x = _images(2)
    feeds = network.stage_feeds(network.begin(x), 0)
    assert list(feeds) == ["images"] and (feeds["images"] == x.numpy()).all()
    _, state = network.advance(network.begin(x), 0)
    later = network.stage_feeds(state, 1)
    assert later and all(name.startswith("state_0_") for name in later)


def test_bad_images_are_refused(network: OnnxRuntimeNetwork) -> None:
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        network(torch.randn(2, 3, 40, 40))
    with pytest.raises(TypeError, match="float32"):
        network(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected 3 input channels"):
        network(torch.randn(2, 4, 32, 32))


def test_heads_cannot_be_replaced(network: OnnxRuntimeNetwork) -> None:
    with pytest.raises(TypeError, match="export it again"):
        network.reset_classifier(5)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        OnnxRuntimeNetwork(str(tmp_path))


def test_measure_exit_costs_refuses_to_count_nothing(network: OnnxRuntimeNetwork) -> None:
    # Its stages run inside ONNX Runtime, where no operation can be counted: zeros would read
    # as "free", so the count is refused and the recorded costs are named.
    with pytest.raises(TypeError, match=r"counted nothing.*known_exit_costs"):
        adanet.measure_exit_costs(network, 32)
    result = adanet.early_exit(network, _images(4), adanet.EarlyExitPolicy([2.0, 2.0, 0.0]))
    assert result.mean_cost == pytest.approx(network.manifest["costs"]["macs"][-1])


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
