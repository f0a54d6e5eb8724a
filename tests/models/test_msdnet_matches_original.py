"""adanet's MSDNet against an independent transcription of the original MSDNet.

For several configurations the original is built with random weights and random batch-norm
statistics, saved as the original scripts save (``module.`` prefix, ``state_dict`` entry),
loaded into adanet's MSDNet with ``load_reference_checkpoint``, and the two must agree on
every exit's logits, the parameter count and the original counter's cost at every exit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from adanet import load_reference_checkpoint, measure_exit_costs
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from adanet.reference_args import parse_reference_args

ORACLE_DIR = Path(__file__).resolve().parents[1] / "reference_impl"


def _load(name: str) -> ModuleType:
    # The oracle lives outside any package; load it by path so no conftest is needed.
    qualified = f"_msdnet_oracle_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, ORACLE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


original = _load("original_msdnet")
op_counter = _load("original_op_counter")


def _args(**options: Any) -> SimpleNamespace:
    """The original's parsed options: args.py defaults, then ``options``."""
    values: dict[str, Any] = {
        "arch": "msdnet",
        "data": "cifar10",
        "nBlocks": 3,
        "base": 2,
        "step": 2,
        "stepmode": "even",
        "nChannels": 8,
        "growthRate": 4,
        "grFactor": [1, 2, 4],
        "bnFactor": [1, 2, 4],
        "bottleneck": True,
        "prune": "max",
        "reduction": 0.5,
    }
    values.update(options)
    values["nScales"] = len(values["grFactor"])
    return SimpleNamespace(**values)


def _reference_text(args: SimpleNamespace) -> str:
    # What the original main.py writes to args.txt: str(args).
    items = ", ".join(f"{key}={value!r}" for key, value in sorted(vars(args).items()))
    return f"Namespace({items})"


CASES = {
    "lin_grow": _args(data="cifar100", nBlocks=4, step=1, base=1, stepmode="lin_grow"),
    "imagenet_4_scales": _args(
        data="ImageNet",
        nBlocks=2,
        base=2,
        step=2,
        nChannels=4,
        growthRate=4,
        grFactor=[1, 2, 4, 4],
        bnFactor=[1, 2, 4, 4],
    ),
    "narrow": _args(nChannels=2, growthRate=2, grFactor=[1, 1, 2], bnFactor=[1, 1, 1]),
    "prune_min": _args(nBlocks=4, base=3, step=2, prune="min", reduction=0.4),
    "no_bottleneck_no_reduction": _args(bottleneck=False, reduction=0.0, nBlocks=2),
    "cifar10_2_scales": _args(grFactor=[2, 3], bnFactor=[4, 1], growthRate=6, nBlocks=3),
}

# The original's AvgPool2d(2) heads need the coarsest map to be 8×8: 32×32 images for three
# CIFAR scales, 224×224 for four ImageNet ones, 16×16 for two CIFAR scales.
IMAGE_SIZES = {"imagenet_4_scales": 224, "cifar10_2_scales": 16}


def _randomise(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith("weight") and tensor.dim() > 1:
                values = values / tensor[0].numel() ** 0.5  # keep activations moderate
            tensor.copy_(values)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_the_original(case: str, tmp_path: Path) -> None:
    args = CASES[case]
    torch.manual_seed(0)
    reference = original.MSDNet(args)
    _randomise(reference, seed=len(case))
    path = tmp_path / "checkpoint.pth.tar"
    state = {f"module.{key}": value for key, value in reference.state_dict().items()}
    torch.save({"epoch": 1, "arch": "msdnet", "state_dict": state, "best_prec1": 0.0}, path)

    config = MSDNetConfig.from_reference_args(_reference_text(args))
    model = MSDNet.from_config(config)
    load_reference_checkpoint(model, path)

    size = IMAGE_SIZES.get(case, 32)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    reference.eval()
    model.eval()
    with torch.no_grad():
        expected = reference(x)
        got = model(x)
    assert len(got) == len(expected) == args.nBlocks
    for ours, theirs in zip(got, expected, strict=True):
        scale = float(theirs.abs().max())
        assert float((ours - theirs).abs().max()) <= 1e-4 * scale

    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    reference_ops, reference_params = op_counter.measure_model(reference, size, size)
    costs = measure_exit_costs(model, size, convention="reference")
    assert [cost.macs for cost in costs] == reference_ops
    assert [cost.params for cost in costs] == reference_params


def test_the_oracle_reproduces_the_published_reference_case(reference_dir: Path) -> None:
    # Checks the oracle itself against the original's recorded outputs and costs.
    stem = reference_dir / "msdnet" / "cifar100_anytime"
    args = SimpleNamespace(**parse_reference_args(stem.with_suffix(".args.txt")))
    reference = original.MSDNet(args)
    checkpoint = torch.load(stem.with_suffix(".pth.tar"), weights_only=True)
    reference.load_state_dict(
        {key.removeprefix("module."): value for key, value in checkpoint["state_dict"].items()}
    )
    io = torch.load(stem.with_suffix(".io.pt"), weights_only=True)
    reference.eval()
    with torch.no_grad():
        outputs = reference(io["input"])
    for ours, theirs in zip(outputs, io["outputs"], strict=True):
        assert float((ours - theirs).abs().max()) <= 1e-4 * float(theirs.abs().max())
    ops, params = op_counter.measure_model(reference, io["image_size"], io["image_size"])
    assert ops == io["macs_per_exit"]
    assert params[-1] == io["params"]
