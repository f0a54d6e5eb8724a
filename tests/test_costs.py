from typing import Any

import pytest
import torch.nn.functional as F
from torch import Tensor, nn

from adanet import EarlyExitNetwork, ExitCost, RANet, RANetConfig, measure_exit_costs


class TwoExitNet(EarlyExitNetwork):
    """conv-bn-relu at 8x8, exit 0; bilinear upsample to 16x16, exit 1."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 3
        self.stem = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        )
        self.exits = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)) for _ in range(2)
        )

    def begin(self, x: Tensor) -> Any:
        return self.stem(x)

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        if exit_index == 1:
            state = F.interpolate(state, size=(16, 16), mode="bilinear", align_corners=True)
        return state, state


def test_actual_convention_by_hand() -> None:
    costs = measure_exit_costs(TwoExitNet(), 8)
    conv, bn, relu, pool0, linear = 3 * 4 * 9 * 64, 4 * 64, 4 * 64, 4 * 64, 4 * 2
    exit0 = conv + bn + relu + pool0 + linear
    upsample, pool1 = 4 * (4 * 256), 4 * 256
    assert costs == [
        ExitCost(exit=0, macs=exit0, params=108 + 8 + 10),
        ExitCost(exit=1, macs=exit0 + upsample + pool1 + linear, params=108 + 8 + 20),
    ]


def test_reference_convention_by_hand() -> None:
    costs = measure_exit_costs(TwoExitNet(), (3, 8, 8), convention="reference")
    # conv + relu + adaptive pool (input elements) + linear with bias; nothing for BN or
    # the upsampling.
    exit0 = 3 * 4 * 9 * 64 + 256 + 256 + (4 * 2 + 2)
    assert [c.macs for c in costs] == [exit0, exit0 + 1024 + 10]


def test_costs_grow_and_restore_training_mode() -> None:
    model = RANet(RANetConfig()).train()
    costs = measure_exit_costs(model, 32)
    assert model.training
    macs = [c.macs for c in costs]
    assert macs == sorted(macs) and len(macs) == model.num_exits
    assert costs[-1].params == sum(p.numel() for p in model.parameters())


def test_actual_counts_more_than_reference() -> None:
    model = RANet(RANetConfig())
    actual = measure_exit_costs(model, 32)
    reference = measure_exit_costs(model, 32, convention="reference")
    # Normalisation and interpolation cost something in the actual convention.
    assert all(a.macs > r.macs for a, r in zip(actual, reference, strict=True))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="convention"):
        measure_exit_costs(TwoExitNet(), 8, convention="flops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        measure_exit_costs(TwoExitNet(), (1, 3, 8, 8))
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        measure_exit_costs(nn.Linear(2, 2), 8)
    with pytest.raises(ValueError, match="too small"):
        measure_exit_costs(RANet(RANetConfig()), 4)
