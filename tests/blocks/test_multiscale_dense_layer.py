"""adanet.blocks.multiscale_dense_layer: MSDNet's cross-scale units, layers and transitions,
their shapes, the order of their channels, and their refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adanet.blocks.multiscale_dense_layer import (
    CrossScaleDenseUnit,
    MultiScaleDenseLayer,
    MultiScaleTransition,
)


def _scales(batch: int = 2) -> list[torch.Tensor]:
    """Three scales, finest first: 4, 8 and 16 channels at 16, 8 and 4 pixels."""
    return [torch.randn(batch, 4 * 2**i, 16 // 2**i, 16 // 2**i) for i in range(3)]


def test_a_unit_keeps_its_input_first_and_adds_its_growth() -> None:
    unit = CrossScaleDenseUnit(8, 6).eval()
    x = torch.randn(2, 8, 5, 5)
    out = unit(x)
    assert out.shape == (2, 14, 5, 5) and unit.out_channels == 14
    assert torch.equal(out[:, :8], x)


def test_a_unit_fed_a_finer_scale_takes_half_its_growth_from_it() -> None:
    unit = CrossScaleDenseUnit(8, 6, finer_channels=4).eval()
    x, finer = torch.randn(2, 8, 5, 5), torch.randn(2, 4, 10, 10)
    out = unit(x, finer)
    assert out.shape == (2, 14, 5, 5)
    # The original's order: [x, from the finer scale, own].
    assert unit.down is not None
    with torch.no_grad():
        torch.testing.assert_close(out[:, 8:11], unit.down(finer))
        torch.testing.assert_close(out[:, 11:], unit.conv(x))
    with pytest.raises(ValueError, match="finer"):
        unit(x)


def test_a_unit_refuses_an_odd_growth_split_between_two_inputs() -> None:
    with pytest.raises(ValueError, match="growth_rate must be even"):
        CrossScaleDenseUnit(8, 5, finer_channels=4)
    with pytest.raises(ValueError, match="growth_rate must be an int >= 1"):
        CrossScaleDenseUnit(8, 0)


@pytest.mark.parametrize("dropped", [0, 1])
def test_a_layer_grows_each_output_scale_and_may_drop_the_finest(dropped: int) -> None:
    growth = [2, 4, 4][dropped:]
    layer = MultiScaleDenseLayer([4, 8, 16], growth, bottleneck_widths=[1, 2, 4]).eval()
    out = layer(_scales())
    assert layer.out_channels == [c + g for c, g in zip([4, 8, 16][dropped:], growth, strict=True)]
    assert [tuple(o.shape[1:]) for o in out] == [
        (c, s, s) for c, s in zip(layer.out_channels, [16, 8, 4][dropped:], strict=True)
    ]
    with pytest.raises(ValueError, match="expected 3 scales, got 2"):
        layer(_scales()[:2])


def test_a_layer_refuses_scale_counts_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="one fewer"):
        MultiScaleDenseLayer([4, 8, 16], [2], bottleneck_widths=[1, 2, 4])
    with pytest.raises(ValueError, match="bottleneck_widths needs one entry per input scale"):
        MultiScaleDenseLayer([4, 8], [2, 2], bottleneck_widths=[1])


def test_a_transition_maps_each_scale_with_its_own_1x1_conv() -> None:
    transition = MultiScaleTransition([4, 8, 16], [2, 4, 8]).eval()
    scales = _scales()
    out = transition(scales)
    assert transition.out_channels == [2, 4, 8]
    assert [tuple(o.shape) for o in out] == [(2, 2, 16, 16), (2, 4, 8, 8), (2, 8, 4, 4)]
    assert all(
        isinstance(conv[0], nn.Conv2d) and conv[0].kernel_size == (1, 1)
        for conv in transition.convs
    )
    with pytest.raises(ValueError, match="need one entry per scale"):
        MultiScaleTransition([4, 8], [2])
    with pytest.raises(ValueError, match="expected 3 scales"):
        transition(scales[1:])
