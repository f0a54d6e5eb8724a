from pathlib import Path

import pytest
import torch

import adanet
from adanet import RANet, RANetConfig
from adanet.compat import read_reference_config


def _reference_model(reference_dir: Path) -> tuple[RANet, dict]:
    config = read_reference_config(
        arch="RANet", path_or_text=reference_dir / "ranet" / "cifar10.args.txt"
    )
    model = RANet.from_config(config)
    adanet.compat.load_reference_checkpoint(model, reference_dir / "ranet" / "cifar10.pth.tar")
    io = torch.load(reference_dir / "ranet" / "cifar10.io.pt", weights_only=True)
    return model.eval(), io


def test_matches_the_original_on_the_reference_case(reference_dir: Path) -> None:
    model, io = _reference_model(reference_dir)
    assert sum(p.numel() for p in model.parameters()) == io["params"]
    with torch.no_grad():
        outputs = model(io["input"])
    assert len(outputs) == len(io["outputs"]) == model.num_exits
    for ours, theirs in zip(outputs, io["outputs"], strict=True):
        scale = theirs.abs().max()
        assert ((ours - theirs).abs().max() / scale).item() < 1e-4
    costs = adanet.measure_exit_costs(model, (3, io["image_size"], io["image_size"]), "reference")
    assert [c.macs for c in costs] == io["macs_per_exit"]
    assert costs[-1].params == io["params"]


@pytest.mark.parametrize("name", RANetConfig.preset_names())
def test_every_preset_runs_forward_and_backward(name: str) -> None:
    config = RANetConfig.preset(name)
    if name == "imagenet":
        # The full ImageNet model (149M parameters) is checked for size and cost below; a
        # narrower model of the same layout exercises the ImageNet stem and heads here.
        import dataclasses

        config = dataclasses.replace(config, num_channels=8, growth_rate=4, num_classes=10)
    model = RANet(config)
    size = config.default_image_size
    outputs = model(torch.randn(2, 3, size, size))
    assert len(outputs) == config.num_exits
    assert all(o.shape == (2, config.num_classes) for o in outputs)
    sum(o.sum() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_imagenet_preset_size_and_exits() -> None:
    model = RANet.from_config("imagenet")
    assert sum(p.numel() for p in model.parameters()) == 149_144_186
    assert model.num_exits == 8


def test_step_one_builds_and_runs() -> None:
    # The original raises NameError while building a fusion block with one layer.
    model = RANet(RANetConfig(step=1))
    outputs = model(torch.randn(2, 3, 32, 32))
    sum(o.sum() for o in outputs).backward()


def test_repeated_first_scale_does_not_downsample_early() -> None:
    # The original downsamples a second level-1 scale; both must stay at the coarsest size.
    model = RANet(RANetConfig(scale_list=(1, 1, 2)))
    features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert {f.shape[-1] for f in features} == {16}
    assert [info["reduction"] for info in model.feature_info] == [2] * model.num_exits


def test_feature_info_matches_forward_features() -> None:
    model = RANet.from_config("cifar10").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        direct = model(x)
    for info, feature in zip(model.feature_info, features, strict=True):
        assert feature.shape[1] == info["num_chs"]
        assert 32 // feature.shape[-1] == info["reduction"]
        assert isinstance(model.get_submodule(info["module"]), adanet.blocks.ScaleBlock)
    for a, b in zip(logits, direct, strict=True):
        torch.testing.assert_close(a, b)


def test_exits_run_coarsest_scale_first() -> None:
    model = RANet.from_config("cifar10")
    scales = [int(info["module"].split(".")[1]) for info in model.feature_info]
    assert scales == sorted(scales) and scales[0] == 0 and scales[-1] == 3


@pytest.mark.parametrize(
    ("x", "error", "pattern"),
    [
        (torch.randn(3, 32, 32), ValueError, r"unsqueeze\(0\)"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.randn(2, 1, 32, 32), ValueError, "expected 3 input channels, got 1"),
        (torch.randn(2, 3, 8, 8), ValueError, "too small"),
        (torch.randn(0, 3, 32, 32), ValueError, "empty batch"),
        ([[1.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_get_clear_errors(x: object, error: type[Exception], pattern: str) -> None:
    model = RANet.from_config("cifar10_budgeted")
    with pytest.raises(error, match=pattern):
        model(x)  # type: ignore[arg-type]


def test_from_config_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="RANetConfig"):
        RANet({"num_blocks": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown RANet preset"):
        RANet.from_config("resnet50")


def test_no_prints_while_building(capsys: pytest.CaptureFixture[str]) -> None:
    RANet.from_config("cifar100")
    assert capsys.readouterr().out == ""


def test_nan_pixels_poison_only_their_own_sample_in_eval_mode() -> None:
    model = RANet(RANetConfig(num_channels=4, growth_rate=4, growth_factors=(2, 1, 1))).eval()
    x = torch.randn(3, 3, 32, 32)
    x[1, 0, 5, 5] = float("nan")
    with torch.no_grad():
        outputs = model(x)
    for logits in outputs:
        assert torch.isnan(logits[1]).all()
        assert torch.isfinite(logits[[0, 2]]).all()
