import pytest
import torch

from adanet.blocks import MultiScaleStem


def test_cifar_stem_strides_where_asked() -> None:
    stem = MultiScaleStem(3, [8, 16, 32], [False, True, False])
    maps = stem(torch.randn(2, 3, 32, 32))
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 32, 32), (16, 16, 16), (32, 16, 16)]
    assert stem.reductions == [1, 2, 2]


def test_imagenet_stem_reduces_by_four_first() -> None:
    stem = MultiScaleStem(3, [8, 16], [False, True], variant="imagenet")
    maps = stem(torch.randn(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [16, 8]
    assert stem.layers[0][0][0].bias is not None  # the originals' 7x7 conv has a bias
    assert stem.reductions == [4, 8]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one entry per scale"):
        MultiScaleStem(3, [8, 16], [False])
    with pytest.raises(ValueError, match="variant"):
        MultiScaleStem(3, [8], [False], variant="mnist")  # type: ignore[arg-type]
