from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adanet import EarlyExitNetwork, RANet, RANetConfig, measure_exit_costs
from adanet.costs import ExitCost


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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_models_are_measured_as_they_are(dtype: torch.dtype) -> None:
    model = RANet(RANetConfig(num_channels=4, growth_rate=4, growth_factors=(2, 1, 1)))
    expected = measure_exit_costs(model, 32)
    reference = measure_exit_costs(model, 32, convention="reference")
    model.to(dtype)
    assert measure_exit_costs(model, 32) == expected
    assert measure_exit_costs(model, 32, convention="reference") == reference
    assert next(model.parameters()).dtype == dtype


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (32.0, TypeError),
        ("32", TypeError),
        (True, TypeError),
        (None, TypeError),
        ((8.0, 8.0), TypeError),
        ((3, 0, 8), ValueError),
        (-8, ValueError),
        ((8,), ValueError),
    ],
)
def test_input_sizes_of_the_wrong_type_or_range_get_clear_errors(
    size: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"input_size must be an int S \(square images\)"):
        measure_exit_costs(TwoExitNet(), size)  # type: ignore[arg-type]


def test_a_torch_without_the_counted_operators_gets_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adanet.costs.counting as costs_module

    real = costs_module._aten
    costs_module._actual_mapping.cache_clear()
    monkeypatch.setattr(
        costs_module, "_aten", lambda name: None if name == "upsample_bilinear2d" else real(name)
    )
    try:
        with pytest.raises(
            RuntimeError, match=r"lacks the aten operators \['upsample_bilinear2d'\]"
        ):
            measure_exit_costs(TwoExitNet(), 8)
    finally:
        costs_module._actual_mapping.cache_clear()


def test_private_batch_norm_overloads_are_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    import adanet.costs.counting as costs_module

    real = costs_module._aten
    costs_module._actual_mapping.cache_clear()
    monkeypatch.setattr(
        costs_module, "_aten", lambda name: None if name.startswith("_native") else real(name)
    )
    try:
        mapping = costs_module._actual_mapping()
        assert torch.ops.aten.native_batch_norm in mapping
    finally:
        costs_module._actual_mapping.cache_clear()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="convention"):
        measure_exit_costs(TwoExitNet(), 8, convention=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="convention"):
        measure_exit_costs(TwoExitNet(), 8, convention="flops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        measure_exit_costs(TwoExitNet(), (1, 3, 8, 8))
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        measure_exit_costs(nn.Linear(2, 2), 8)
    with pytest.raises(ValueError, match="too small"):
        measure_exit_costs(RANet(RANetConfig()), 4)
