"""Tests for adanet.cli.wall_times: budget points timed on a stream; the static run's MACs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adanet import EarlyExitNetwork, EarlyExitPolicy, RANet, RANetConfig, measure_exit_costs
from adanet.cli.wall_times import measure_wall_times, static_run_macs


@pytest.fixture(scope="module")
def model_and_loader() -> tuple[RANet, DataLoader[Any]]:
    torch.manual_seed(0)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4)).eval()
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 4, (40,))
    return model, DataLoader(TensorDataset(x, y), batch_size=16)


def test_measure_wall_times(model_and_loader: tuple[RANet, Any]) -> None:
    model, loader = model_and_loader
    model.train()
    costs = [float(k + 1) for k in range(model.num_exits)]
    policies = {
        0.5: EarlyExitPolicy([0.0] * model.num_exits),  # everybody leaves at exit 0
        1.5: EarlyExitPolicy([float("inf")] * model.num_exits),  # nobody leaves early
    }
    walls = measure_wall_times(
        {"eager": model}, loader, policies, costs=costs, p=0.7, max_images=4, warmup_batches=1
    )
    assert model.training  # restored
    model.eval()
    assert walls.num_images == 16  # one warm-up batch, then whole batches of 16
    assert walls.batch_size == 16 and walls.p == 0.7 and walls.warmup_batches == 1
    (path,) = walls.paths
    assert path.name == "eager" and min(path.last_exit_ms, path.all_exits_ms) > 0
    first, never = path.points
    assert first.macs_ratio == pytest.approx(costs[0] / costs[-1]) and never.macs_ratio == 1.0
    assert path.static_macs == costs[-1] and first.static_macs_ratio == first.macs_ratio
    static = measure_wall_times(
        {"eager": model}, loader, policies, costs=costs, p=0.7, static_macs={"eager": 2.0}
    )
    assert static.paths[0].points[0].static_macs_ratio == pytest.approx(costs[0] / 2.0)
    assert first.time_ratio > 0 and first.ms_per_image > 0
    assert path.at(0.7) is first and walls.recommended is path
    # 40 images: two warm-up batches of 16 leave the last 8 to time.
    assert measure_wall_times({"eager": model}, loader, policies, costs=costs, p=1).num_images == 8
    with pytest.raises(ValueError, match="max_images"):
        measure_wall_times({"eager": model}, loader, policies, costs=costs, p=1, max_images=0)
    with pytest.raises(ValueError, match="no test batch was left to time"):
        measure_wall_times({"eager": model}, [], policies, costs=costs, p=1)
    with pytest.raises(ValueError, match="at least one network"):
        measure_wall_times({}, loader, policies, costs=costs, p=1)


class _HeadAlone(EarlyExitNetwork):
    """One exit head as a one-exit network on a fixed feature map, to count the head alone."""

    def __init__(self, head: torch.nn.Module, feature: torch.Tensor) -> None:
        super().__init__()
        self.feature = feature
        self.in_channels = 3
        self.exits = torch.nn.ModuleList([head])

    def begin(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature

    def advance(self, state: torch.Tensor, exit_index: int) -> tuple[torch.Tensor, Any]:
        return state, state


def test_static_run_macs_leave_out_every_earlier_head(model_and_loader: tuple[RANet, Any]) -> None:
    model, _ = model_and_loader
    costs = [c.macs for c in measure_exit_costs(model, 32)]
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 32, 32))
    heads = [
        measure_exit_costs(_HeadAlone(head, feature), 32)[0].macs
        for head, feature in zip(model.exits, features, strict=True)
    ]
    assert all(cost > 0 for cost in heads)
    static = static_run_macs(model, (3, 32, 32))
    assert static == pytest.approx(costs[-1] - sum(heads[:-1]))
    assert not model.training  # left in the mode it was in
    model.train()
    try:
        assert static_run_macs(model, (3, 32, 32)) == static and model.training
    finally:
        model.eval()
