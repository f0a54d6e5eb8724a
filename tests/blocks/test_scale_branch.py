import pytest
import torch

from adanet.blocks import ScaleBlock, ScaleBranch


def test_plain_block_features_and_transition() -> None:
    block = ScaleBlock(8, 3, 4, transition=True, reduction=0.5)
    x = torch.randn(2, 8, 8, 8)
    y, features = block(x)
    assert [f.shape[1] for f in features] == [8, 12, 16, 20] == block.feature_channels
    assert features[0] is x
    assert y.shape == (2, 10, 8, 8) and block.out_channels == 10


def test_fused_block_takes_coarse_features_and_appends_the_last() -> None:
    coarse_block = ScaleBlock(16, 2, 8)
    _, coarse = coarse_block(torch.randn(2, 16, 4, 4))
    block = ScaleBlock(8, 2, 4, coarse_channels=coarse_block.feature_channels, downsample=True)
    y, features = block(torch.randn(2, 8, 8, 8), coarse)
    # 8 + 2 * 4 = 16 channels, plus floor(16 * 0.25) from the coarse block's last feature.
    assert block.out_channels == 20
    assert y.shape == (2, 20, 4, 4)
    assert features[-1].shape[-1] == 4  # the last layer downsampled


def test_fused_block_without_coarse_features_is_a_clear_error() -> None:
    block = ScaleBlock(8, 2, 4, coarse_channels=[16, 24, 32])
    with pytest.raises(ValueError, match="coarse features"):
        block(torch.randn(1, 8, 8, 8))


def test_fused_block_needs_enough_coarse_widths() -> None:
    with pytest.raises(ValueError, match="coarse feature"):
        ScaleBlock(8, 3, 4, coarse_channels=[16, 24])


def test_branch_runs_blocks_and_exposes_features() -> None:
    coarse = ScaleBranch([ScaleBlock(16, 2, 8), ScaleBlock(32, 2, 8)])
    _, coarse_features = coarse(torch.randn(2, 16, 4, 4))
    first = ScaleBlock(8, 2, 4, coarse_channels=coarse.blocks[0].feature_channels)
    second = ScaleBlock(first.out_channels, 2, 4, coarse_channels=coarse.blocks[1].feature_channels)
    fine = ScaleBranch([first, second, ScaleBlock(second.out_channels, 2, 4)])
    assert fine.num_fused == 2 and len(fine) == 3
    y, features = fine(torch.randn(2, 8, 8, 8), coarse_features)
    assert len(features) == 3
    y.sum().backward()
    assert all(p.grad is not None for p in fine.parameters())


def test_branch_rejects_fused_blocks_after_plain_ones() -> None:
    with pytest.raises(ValueError, match="fused blocks must come first"):
        ScaleBranch([ScaleBlock(8, 1, 4), ScaleBlock(12, 1, 4, coarse_channels=[8, 12])])


def test_widths_that_reach_zero_are_refused_when_built() -> None:
    import pytest

    from adanet.blocks import DenseLayer, ExitHead, ScaleBlock

    in_transition = r"reduction=0\.01 leaves floor\(0\.01 \* 16\) = 0 channels in the transition"
    with pytest.raises(ValueError, match=in_transition):
        ScaleBlock(8, 2, 4, transition=True, reduction=0.01)
    with pytest.raises(ValueError, match="growth_rate must be an int >= 1"):
        DenseLayer(8, 0)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        ExitHead(8, 0)
    with pytest.raises(TypeError, match="bottleneck_width must be an int"):
        DenseLayer(8, 4, bottleneck_width=1.5)  # type: ignore[arg-type]
