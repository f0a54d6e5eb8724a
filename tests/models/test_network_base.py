"""adanet.models.network_base (ConfiguredNetwork) with the EarlyExitNetwork fine-tuning API:
reset_classifier keeps the config true and trains, feature_info matches forward_features,
GroupNorm + SiLU networks work end to end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adanet
from adanet import MSDNet, MSDNetConfig, RANet, RANetConfig

SMALL_RANET = RANetConfig(num_channels=4, growth_rate=4, growth_factors=(2, 1, 1), num_classes=6)
SMALL_MSDNET = MSDNetConfig(
    num_blocks=3, base=2, step=1, num_channels=4, growth_rate=2, growth_factors=(1, 2, 2)
)


def _one_training_step(model: adanet.EarlyExitNetwork, classes: int) -> None:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, classes, (4,))
    loss = adanet.training.MultiExitLoss("ce")(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    assert all(head.classifier.weight.grad is not None for head in model.exits)
    before = [head.classifier.weight.detach().clone() for head in model.exits]
    optimizer.step()
    assert all(
        not torch.equal(b, head.classifier.weight)
        for b, head in zip(before, model.exits, strict=True)
    )


@pytest.mark.parametrize("config", [SMALL_RANET, SMALL_MSDNET], ids=["ranet", "msdnet"])
def test_reset_classifier_reheads_every_exit_and_keeps_the_config_true(
    config: RANetConfig | MSDNetConfig,
) -> None:
    model = RANet(config) if isinstance(config, RANetConfig) else MSDNet(config)
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("exits")}
    convs = model.exits[0].convs[0][0].weight.clone()
    model.reset_classifier(37)
    assert model.config.num_classes == 37
    assert all(head.classifier.out_features == 37 for head in model.exits)
    assert torch.equal(model.exits[0].convs[0][0].weight, convs)  # only the linear is new
    for key, value in model.state_dict().items():
        if key in body:
            assert torch.equal(value, body[key])
    assert [o.shape for o in model.eval()(torch.randn(2, 3, 32, 32))] == [(2, 37)] * len(
        model.exits
    )
    _one_training_step(model, 37)


def test_create_model_with_num_classes_then_reset() -> None:
    model = adanet.create_model("ranet_cifar10", num_classes=100)
    assert all(head.classifier.out_features == 100 for head in model.exits)
    model.reset_classifier(37)
    assert model.config.num_classes == 37  # type: ignore[attr-defined]
    assert {head.num_classes for head in model.get_classifier()} == {37}
    assert model.get_classifier() is model.exits


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "10", None])
def test_reset_classifier_refuses_bad_counts(bad: object) -> None:
    model = RANet(SMALL_RANET)
    with pytest.raises((TypeError, ValueError), match="num_classes must be an int >= 1"):
        model.reset_classifier(bad)  # type: ignore[arg-type]
    assert model.config.num_classes == 6


@pytest.mark.parametrize(
    "name", sorted(adanet.list_models("ranet_*") + adanet.list_models("msdnet_*"))
)
def test_feature_info_channels_equal_the_features_of_every_model(name: str) -> None:
    small = {"num_channels": 4, "growth_rate": 4} if "imagenet" in name else {}
    model = adanet.create_model(name, **small).eval()
    size = model.pretrained_cfg.input_size[1]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(x)
    info = model.feature_info
    assert info.channels() == [f.shape[1] for f in features]
    assert info.reduction() == [size // f.shape[-1] for f in features]
    modules = dict(model.named_modules())
    assert all(name in modules for name in info.module_name())
    assert info.channels(0) == info[0]["num_chs"] and len(info) == model.num_exits


def test_forward_head_pre_logits_gives_what_the_linear_layers_classify() -> None:
    model = RANet(SMALL_RANET).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(3, 3, 32, 32))
        pooled = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    for head, p, out in zip(model.exits, pooled, logits, strict=True):
        assert p.shape == (3, head.classifier.in_features)
        torch.testing.assert_close(head.classifier(p), out)


def test_group_norm_and_silu_ranet_builds_trains_and_exits_early() -> None:
    config = SMALL_RANET.replace(norm="group:4", act="silu")
    model = RANet(config)
    kinds = {type(m) for m in model.modules()}
    assert nn.GroupNorm in kinds and nn.SiLU in kinds
    assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    _one_training_step(model, 6)
    model.eval()
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        logits = torch.stack(model(x))
    policy = adanet.calibrate_shares(
        logits, [0.5] + [0.5 / (model.num_exits - 1)] * (model.num_exits - 1)
    )
    result = adanet.early_exit(model, x, policy)
    assert int((result.exit_index == 0).sum()) >= 1  # some samples really left at exit 0
    for i, k in enumerate(result.exit_index.tolist()):
        torch.testing.assert_close(result.logits[i], logits[k, i], rtol=1e-4, atol=1e-4)


def test_norm_and_act_round_trip_through_json_and_refuse_callables() -> None:
    config = SMALL_MSDNET.replace(norm="group:2", act="gelu")
    assert MSDNetConfig.from_json(config.to_json()) == config
    assert MSDNetConfig().norm == "batch" and RANetConfig().act == "relu"  # the originals'
    custom = SMALL_MSDNET.replace(norm=nn.InstanceNorm2d)
    assert any(isinstance(m, nn.InstanceNorm2d) for m in MSDNet(custom).modules())
    with pytest.raises(TypeError, match="callable, which a dict or JSON cannot hold"):
        custom.to_dict()
    with pytest.raises(ValueError, match="norm must be 'batch', 'group:G'"):
        RANetConfig(norm="group:0")
    with pytest.raises(ValueError, match="act must be one of"):
        RANetConfig(act="tanh")
    with pytest.raises(TypeError, match="norm must be"):
        RANetConfig(norm=3)  # type: ignore[arg-type]
