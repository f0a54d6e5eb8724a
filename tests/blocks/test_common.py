"""adanet.blocks._common: the pieces every block shares."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adanet.blocks._common import as_tensor, bottleneck_conv, floor_channels, resize_to


def test_floor_channels_keeps_the_floor_of_the_share_and_refuses_none() -> None:
    assert floor_channels("reduction", 0.5, 13, "in block 0") == 6
    message = (
        r"compress_factor=0\.05 leaves floor\(0\.05 \* 10\) = 0 channels in block 2; use "
        r"compress_factor >= 0\.1 or 0$"
    )
    with pytest.raises(ValueError, match=message):
        floor_channels("compress_factor", 0.05, 10, "in block 2", " or 0")


def test_the_bottleneck_never_widens_its_input() -> None:
    narrow = bottleneck_conv(6, 4, bottleneck_width=4)
    wide = bottleneck_conv(64, 4, bottleneck_width=4)
    assert narrow[0][0].out_channels == 6 and wide[0][0].out_channels == 16
    pre = bottleneck_conv(6, 4, bottleneck_width=1, norm_first=True)
    assert [type(m) for m in pre] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d] * 2
    assert bottleneck_conv(6, 4, bottleneck_width=1, stride=2)(torch.randn(1, 6, 9, 9)).shape == (
        1,
        4,
        5,
        5,
    )


def test_resize_to_its_own_size_returns_the_tensor_itself() -> None:
    x = torch.randn(1, 2, 4, 4)
    assert resize_to(x, (4, 4)) is x
    assert resize_to(x, (7, 3)).shape == (1, 2, 7, 3)


def test_as_tensor_concatenates_pieces_along_channels() -> None:
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 1, 3, 3)
    assert as_tensor(a) is a and as_tensor([a]) is a
    assert torch.equal(as_tensor([a, b]), torch.cat([a, b], dim=1))
