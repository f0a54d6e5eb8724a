import pytest
import torch
from torch import nn

from adanet.blocks import ExitHead


@pytest.mark.parametrize("size", [8, 9, 16, 28])
def test_works_at_any_size(size: int) -> None:
    head = ExitHead(12, 5, hidden_channels=16)
    assert head(torch.randn(2, 12, size, size)).shape == (2, 5)


def test_equals_the_original_avgpool2_head_at_the_original_size() -> None:
    head = ExitHead(12, 5, hidden_channels=16).eval()
    x = torch.randn(2, 12, 8, 8)  # two stride-2 convs leave 2x2, as in the original
    original_pool = nn.AvgPool2d(2)(head.convs(x)).flatten(1)
    torch.testing.assert_close(head(x), head.classifier(original_pool))


def test_hidden_width_defaults_to_input_for_imagenet_heads() -> None:
    head = ExitHead(24, 7, hidden_channels=None)
    assert head.classifier.in_features == 24


def test_backward() -> None:
    head = ExitHead(4, 3)
    head(torch.randn(2, 4, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in head.parameters())
