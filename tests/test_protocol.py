from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import torch
from torch import Tensor, nn

from adanet import EarlyExitNetwork, select_samples


@dataclass
class _State:
    x: Tensor
    step: int


class _Pair(NamedTuple):
    a: Tensor
    b: list[Tensor]


def test_select_samples_reaches_every_tensor() -> None:
    x = torch.arange(12.0).reshape(4, 3)
    state = {
        "x": x,
        "nested": [x, (x, None)],
        "pair": _Pair(x, [x]),
        "dc": _State(x, 7),
        "name": "kept",
    }
    index = torch.tensor([3, 1])
    out = select_samples(state, index)
    expected = x[[3, 1]]
    assert torch.equal(out["x"], expected)
    assert torch.equal(out["nested"][0], expected) and out["nested"][1][1] is None
    assert isinstance(out["pair"], _Pair) and torch.equal(out["pair"].b[0], expected)
    assert isinstance(out["dc"], _State) and out["dc"].step == 7
    assert torch.equal(out["dc"].x, expected)
    assert out["name"] == "kept"


class _Tiny(EarlyExitNetwork):
    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 2
        self.blocks = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=1) for _ in range(3))
        self.exits = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 4)) for _ in range(3)
        )

    def begin(self, x: Tensor) -> Any:
        return x

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        y = self.blocks[exit_index](state)
        return y, y


def test_a_custom_network_gets_forward_features_and_heads() -> None:
    model = _Tiny()
    x = torch.randn(5, 2, 6, 6)
    logits = model(x)
    assert model.num_exits == 3 and len(logits) == 3 and logits[0].shape == (5, 4)
    features = model.forward_features(x)
    for a, b in zip(model.forward_head(features), logits, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="3 feature maps"):
        model.forward_head(features[:2])


def test_dropping_samples_between_exits_keeps_the_others_exact() -> None:
    model = _Tiny().eval()
    x = torch.randn(5, 2, 6, 6)
    full = model(x)
    state = model.begin(x)
    _, state = model.advance(state, 0)
    keep = torch.tensor([0, 2, 4])
    state = select_samples(state, keep)
    feature, _ = model.advance(state, 1)
    torch.testing.assert_close(model.exits[1](feature), full[1][keep])


def test_the_protocol_is_abstract() -> None:
    with pytest.raises(TypeError):
        EarlyExitNetwork()  # type: ignore[abstract]
