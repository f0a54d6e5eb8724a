from typing import Any

import pytest
import torch
from torch import Tensor, nn

from adanet import EarlyExitNetwork
from adanet.models import select_samples


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


# ------------------------------------------------------------------ input dtype and device


def test_an_input_of_another_dtype_than_the_model_is_refused_before_any_conv() -> None:
    model = _Tiny()
    with pytest.raises(TypeError, match=r"images are torch\.float64 but the model's parameters"):
        model(torch.randn(2, 2, 6, 6, dtype=torch.float64))
    half = _Tiny().to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"x\.to\(torch\.bfloat16\)"):
        half(torch.randn(2, 2, 6, 6))
    assert half(torch.randn(2, 2, 6, 6, dtype=torch.bfloat16))[0].dtype == torch.bfloat16
    # Under autocast the conv casts for itself: allowed.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert len(model(torch.randn(2, 2, 6, 6))) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_input_on_another_device_is_refused() -> None:
    model = _Tiny().cuda()
    with pytest.raises(ValueError, match="images are on cpu but the model is on cuda"):
        model(torch.randn(2, 2, 6, 6))


# ------------------------------------------------------------- fine-tuning, description


def test_a_custom_network_with_sequential_heads_can_be_reheaded_and_read_before_logits() -> None:
    model = _Tiny()
    assert model.get_classifier() is model.exits
    model.reset_classifier(9)
    x = torch.randn(5, 2, 6, 6)
    assert [o.shape for o in model(x)] == [(5, 9)] * 3
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    assert [p.shape for p in pooled] == [(5, 2)] * 3


class _OddHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 4)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(x.mean(dim=(2, 3)))
        return out


def test_heads_adanet_cannot_rehead_get_a_clear_error() -> None:
    model = _Tiny()
    model.exits[1] = _OddHead()
    with pytest.raises(TypeError, match="exit 1's head is a _OddHead"):
        model.reset_classifier(3)
    with pytest.raises(TypeError, match="override reset_classifier and forward_head"):
        model.forward_head(model.forward_features(torch.randn(1, 2, 6, 6)), pre_logits=True)


def test_a_custom_network_gets_a_measured_feature_info_and_a_default_cfg() -> None:
    model = _Tiny().train()
    info = model.feature_info
    assert info.channels() == [2, 2, 2] and info.reduction() == [1, 1, 1]
    assert info.module_name(1) == "exits.1" and model.training
    assert model.pretrained_cfg.input_size == (2, 32, 32)
    with pytest.raises(TypeError, match="FeatureInfo"):
        model.feature_info = [{"num_chs": 2}]  # type: ignore[assignment]
