import pytest
import torch
import torch.nn.functional as F

from adanet.blocks import FusionBlock


def test_output_layout_and_upsampling() -> None:
    block = FusionBlock(8, 16, 8, compress_factor=0.25)
    x, coarse = torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8)
    y = block(x, coarse)
    assert y.shape == (2, 16, 16, 16)
    assert torch.equal(y[:, :8], x)
    # Two of the eight new channels come from the coarse path, upsampled bilinearly.
    expected = F.interpolate(
        block.coarse_conv(coarse), size=(16, 16), mode="bilinear", align_corners=True
    )
    torch.testing.assert_close(y[:, 8:10], expected)
    torch.testing.assert_close(y[:, 10:], block.conv(x))


def test_downsampling_variant_resizes_everything_to_half() -> None:
    block = FusionBlock(8, 16, 8, downsample=True)
    x, coarse = torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8)
    y = block(x, coarse)
    assert y.shape == (2, 16, 8, 8)
    expected = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=True)
    torch.testing.assert_close(y[:, :8], expected)


def test_backward() -> None:
    block = FusionBlock(4, 6, 4, compress_factor=0.5)
    block(torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)).sum().backward()
    assert all(p.grad is not None for p in block.parameters())


@pytest.mark.parametrize("factor", [0.1, 1.0])
def test_compress_factor_must_leave_both_paths_a_channel(factor: float) -> None:
    with pytest.raises(ValueError, match="compress_factor"):
        FusionBlock(4, 4, 4, compress_factor=factor)
