"""MSDNet: the original's reference checkpoint, the ImageNet preset's costs, every preset,
stepwise early exit, and refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from adanet import measure_exit_costs
from adanet.compat import (
    load_reference_checkpoint,
    read_reference_config,
)
from adanet.models import select_samples
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from small_configs import SMALL_MSDNET

SMALL = SMALL_MSDNET


def _max_relative_error(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    assert len(ours) == len(theirs)
    return max(
        float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, theirs, strict=True)
    )


# ----------------------------------------------------------------------------- reference


def test_reference_checkpoint_gives_the_original_outputs_params_and_costs(
    reference_dir: Path,
) -> None:
    stem = reference_dir / "msdnet" / "cifar100_anytime"
    config = read_reference_config(arch="msdnet", path_or_text=stem.with_suffix(".args.txt"))
    model = MSDNet.from_config(config)
    load_reference_checkpoint(model, stem.with_suffix(".pth.tar"))
    io = torch.load(stem.with_suffix(".io.pt"), weights_only=True)
    model.eval()
    with torch.no_grad():
        outputs = model(io["input"])
    assert _max_relative_error(outputs, io["outputs"]) < 1e-4
    assert sum(p.numel() for p in model.parameters()) == io["params"]
    costs = measure_exit_costs(model, io["image_size"], convention="reference")
    assert [cost.macs for cost in costs] == io["macs_per_exit"]
    assert costs[-1].params == io["params"]


@pytest.mark.slow
def test_imagenet_preset_has_the_published_size_and_costs() -> None:
    model = MSDNet.from_config("imagenet")
    assert sum(p.numel() for p in model.parameters()) == 23_958_440
    costs = measure_exit_costs(model, 224, convention="reference")
    assert [round(cost.macs / 1e6, 1) for cost in costs] == [339.9, 685.5, 1008.2, 1254.5, 1360.5]
    assert costs[-1].params == 23_958_440


# ------------------------------------------------------------------------------ presets


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name == "imagenet" else [])
        for name in MSDNetConfig.preset_names()
    ],
)
def test_every_preset_trains_at_batch_two(name: str) -> None:
    torch.manual_seed(0)
    model = MSDNet.from_config(name)
    config = model.config
    # The smallest image each preset takes keeps this quick; the ImageNet preset runs at 224
    # in the cost test above.
    size = model.min_input_size
    assert size <= config.default_image_size
    outputs = model(torch.randn(2, 3, size, size))
    assert len(outputs) == config.num_exits == len(model.exits)
    assert all(out.shape == (2, config.num_classes) for out in outputs)
    sum(out.square().mean() for out in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_feature_info_describes_what_each_exit_sees() -> None:
    model = MSDNet(SMALL).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert len(model.feature_info) == len(features) == SMALL.num_exits
    for k, (info, feature) in enumerate(zip(model.feature_info, features, strict=True)):
        assert info["exit"] == k
        assert info["module"] == f"blocks.{k}"
        assert feature.shape[1] == info["num_chs"] == model.exits[k].in_channels
        assert feature.shape[-1] == 32 // info["reduction"]


def test_imagenet_variant_heads_and_stem() -> None:
    config = MSDNetConfig(
        num_blocks=2,
        base=1,
        step=1,
        num_channels=4,
        growth_rate=2,
        growth_factors=(1, 2, 4, 4),
        bottleneck_factors=(1, 2, 4, 4),
        variant="imagenet",
        num_classes=7,
    )
    model = MSDNet(config)
    # Heads as wide as their input (the original's ImageNet classifier), on the coarsest
    # scale, which is 32 times smaller than the image.
    assert model.feature_info[0]["reduction"] == 32
    assert model.min_input_size == 128
    for head, info in zip(model.exits, model.feature_info, strict=True):
        assert head.classifier.in_features == info["num_chs"]
    assert [out.shape for out in model(torch.randn(2, 3, 128, 160))] == [(2, 7)] * 2


def test_cifar_heads_are_128_wide() -> None:
    model = MSDNet(SMALL)
    assert all(head.classifier.in_features == 128 for head in model.exits)


def test_default_init_is_pytorchs() -> None:
    # The original never reaches a conv with its initialiser: batch norms keep weight 1 and
    # bias 0, convs PyTorch's kaiming-uniform bound.
    model = MSDNet(SMALL)
    conv = next(m for m in model.blocks.modules() if isinstance(m, nn.Conv2d))
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert float(conv.weight.detach().abs().max()) <= 1 / fan_in**0.5 + 1e-6


def test_building_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    MSDNet(SMALL)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------- early exit


def test_stepwise_with_dropped_samples_matches_the_full_forward() -> None:
    torch.manual_seed(1)
    model = MSDNet(replace(SMALL, growth_factors=(1, 2, 4))).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        full = model(x)
        state = model.begin(x)
        kept = torch.arange(5)
        for k in range(model.num_exits):
            feature, state = model.advance(state, k)
            assert isinstance(state, list) and all(t.shape[0] == len(kept) for t in state)
            logits = model.exits[k](feature)
            torch.testing.assert_close(logits, full[k][kept], rtol=1e-5, atol=1e-5)
            # Let every other sample leave here.
            keep = torch.arange(0, len(kept), 2)
            state = select_samples(state, keep)
            kept = kept[keep]


def test_state_holds_the_active_scales_finest_first() -> None:
    model = MSDNet(MSDNetConfig.preset("cifar10_anytime")).eval()
    with torch.no_grad():
        state = model.begin(torch.randn(1, 3, 32, 32))
        assert [t.shape[-1] for t in state] == [32, 16, 8]
        sizes = []
        for k in range(model.num_exits):
            _, state = model.advance(state, k)
            sizes.append([t.shape[-1] for t in state])
    # prune "max" drops the finest scale after each third of the layers.
    assert sizes[0] == [32, 16, 8]
    assert sizes[-1] == [8]


# ---------------------------------------------------------------------------- refusals


def test_from_config_refuses_other_things() -> None:
    with pytest.raises(TypeError, match="MSDNetConfig"):
        MSDNet({"num_blocks": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="known presets"):
        MSDNet.from_config("msdnet-7")


@pytest.mark.parametrize(
    ("x", "error", "words"),
    [
        (torch.randn(1, 3, 8, 32), ValueError, "too small"),
        (torch.randn(1, 3, 15, 15), ValueError, "at least 16"),
        (torch.randn(1, 1, 32, 32), ValueError, "3 input channels"),
        (torch.randn(3, 32, 32), ValueError, "unsqueeze"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "floating"),
        (torch.randn(0, 3, 32, 32), ValueError, "empty"),
        ([[0.0]], TypeError, "Tensor"),
    ],
)
def test_bad_inputs_are_refused(x: object, error: type[Exception], words: str) -> None:
    model = MSDNet(SMALL)
    with pytest.raises(error, match=words):
        model(x)
