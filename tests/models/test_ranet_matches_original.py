"""Differential test: adanet's RANet against an independent transcription of the original.

For each configuration the oracle (``tests/reference_impl/original_ranet.py``) is built with
random weights and random BatchNorm statistics, saved as an original-format checkpoint
(``module.`` keys) next to the ``args.txt`` line the original ``main.py`` writes; adanet
rebuilds the network from those two files alone. Outputs of every exit, parameter counts and
the original ``op_counter.py`` costs per exit must agree.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

import adanet


def _load_oracle() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "reference_impl" / "original_ranet.py"
    name = "_adanet_tests_original_ranet"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


original = _load_oracle()


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """These nets are tiny: one intra-op thread is faster, and far faster on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# name -> (options of the original's argparse, input size). Options not given take the
# original args.py defaults.
CASES: dict[str, tuple[dict[str, Any], int]] = {
    # The visible reference case (train_cifar.sh).
    "cifar10_train_cifar_sh": (
        {"grFactor": [4, 2, 1, 1], "bnFactor": [4, 2, 1, 1], "scale_list": [1, 2, 3, 3]},
        32,
    ),
    # The README's budgeted-batch command.
    "cifar10_readme_lg": (
        {
            "step": 2,
            "stepmode": "lg",
            "scale_list": [1, 2, 3],
            "grFactor": [4, 2, 1],
            "bnFactor": [4, 2, 1],
        },
        32,
    ),
    "cifar100_1233_step3": (
        {
            "data": "cifar100",
            "nChannels": 8,
            "growthRate": 4,
            "step": 3,
            "grFactor": [4, 2, 1, 1],
            "bnFactor": [4, 2, 1, 1],
            "scale_list": [1, 2, 3, 3],
        },
        32,
    ),
    # Two scales: the AvgPool2d(2) heads need a 2×2 map, hence 16×16 input.
    "cifar10_two_scales_reduction1": (
        {
            "nChannels": 8,
            "growthRate": 4,
            "step": 2,
            "grFactor": [2, 1],
            "bnFactor": [2, 1],
            "scale_list": [1, 2],
            "reduction": 1.0,
        },
        16,
    ),
    "cifar10_1234": (
        {
            "nChannels": 8,
            "growthRate": 4,
            "step": 2,
            "grFactor": [4, 2, 2, 1],
            "bnFactor": [4, 2, 2, 1],
            "scale_list": [1, 2, 3, 4],
        },
        64,
    ),
    "cifar10_lg_four_scales": (
        {
            "nChannels": 8,
            "growthRate": 4,
            "nBlocks": 1,
            "block_step": 1,
            "step": 2,
            "stepmode": "lg",
            "grFactor": [4, 2, 1, 1],
            "bnFactor": [4, 2, 1, 1],
            "scale_list": [1, 2, 3, 3],
        },
        32,
    ),
    "cifar10_122": (
        {
            "nChannels": 8,
            "growthRate": 4,
            "step": 2,
            "grFactor": [4, 2, 1],
            "bnFactor": [4, 2, 1],
            "scale_list": [1, 2, 2],
        },
        16,
    ),
    # A jump of two levels between neighbours: one stride in the stem, one downsampling.
    "cifar10_13": (
        {
            "nChannels": 8,
            "growthRate": 4,
            "step": 2,
            "grFactor": [2, 1],
            "bnFactor": [2, 1],
            "scale_list": [1, 3],
        },
        16,
    ),
    "cifar10_other_knobs": (
        {
            "nChannels": 8,
            "growthRate": 8,
            "nBlocks": 3,
            "block_step": 1,
            "step": 3,
            "compress_factor": 0.5,
            "reduction": 0.75,
            "grFactor": [4, 2, 1],
            "bnFactor": [2, 2, 1],
            "scale_list": [1, 2, 3],
        },
        32,
    ),
    "imagenet_1234_4221": (
        {
            "data": "ImageNet",
            "nChannels": 8,
            "growthRate": 4,
            "step": 2,
            "grFactor": [4, 2, 2, 1],
            "bnFactor": [4, 2, 2, 1],
            "scale_list": [1, 2, 3, 4],
        },
        224,
    ),
    # Three scales: the heads reach 2×2 only at 112×112.
    "imagenet_123_lg": (
        {
            "data": "ImageNet",
            "nChannels": 8,
            "growthRate": 4,
            "nBlocks": 1,
            "step": 2,
            "stepmode": "lg",
            "block_step": 1,
            "grFactor": [4, 2, 1],
            "bnFactor": [4, 2, 1],
            "scale_list": [1, 2, 3],
        },
        112,
    ),
}


def _original_args(**options: Any) -> argparse.Namespace:
    """The Namespace the original args.py produces (lists already parsed)."""
    args: dict[str, Any] = {
        "save": "save/test",
        "resume": None,
        "evalmode": None,
        "evaluate_from": "",
        "print_freq": 10,
        "seed": 0,
        "gpu": "0",
        "data": "cifar10",
        "data_root": "/data",
        "use_valid": False,
        "workers": 4,
        "arch": "RANet",
        "reduction": 0.5,
        "nBlocks": 2,
        "nChannels": 16,
        "growthRate": 6,
        "grFactor": [4, 2, 1],
        "bnFactor": [4, 2, 1],
        "block_step": 2,
        "scale_list": [1, 2, 3],
        "compress_factor": 0.25,
        "step": 4,
        "stepmode": "even",
        "bnAfter": True,
        "epochs": 300,
        "start_epoch": 0,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.1,
        "lr_type": "multistep",
        "decay_rate": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }
    args.update(options)
    args["nScales"] = len(args["grFactor"])
    args["splits"] = ["train", "val"]
    args["num_classes"] = {"cifar10": 10, "cifar100": 100}.get(args["data"], 1000)
    return argparse.Namespace(**args)


def _randomise(model: nn.Module, seed: int) -> None:
    """Random BatchNorm statistics/affine parameters and Linear biases, so eval outputs
    depend on every tensor of the state dict."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                assert module.num_batches_tracked is not None
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, nn.Linear):
                module.bias.copy_(0.1 * torch.randn(module.out_features, generator=generator))


def _write_original_run(tmp_path: Path, options: dict[str, Any]) -> tuple[nn.Module, Path, Path]:
    """Build the oracle and save its args.txt and checkpoint as the original main.py does."""
    torch.manual_seed(0)
    args = _original_args(**options)
    oracle = original.RANet(args)  # sets args.num_exits, as in main.py before args.txt
    _randomise(oracle, seed=1)
    oracle.eval()
    args_path = tmp_path / "args.txt"
    args_path.write_text(f"{args}\n", encoding="utf-8")
    checkpoint = {
        "epoch": 0,
        "arch": "RANet",
        "state_dict": {f"module.{k}": v for k, v in oracle.state_dict().items()},
        "best_prec1": 0.0,
        "optimizer": {},
    }
    checkpoint_path = tmp_path / "checkpoint_000.pth.tar"
    torch.save(checkpoint, checkpoint_path)
    return oracle, args_path, checkpoint_path


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("case", sorted(CASES))
def test_ranet_matches_original(case: str, tmp_path: Path) -> None:
    options, image_size = CASES[case]
    oracle, args_path, checkpoint_path = _write_original_run(tmp_path, options)

    config = adanet.RANetConfig.from_reference_args(args_path)
    model = adanet.RANet.from_config(config)
    adanet.load_reference_checkpoint(model, checkpoint_path)
    model.eval()

    assert _num_params(model) == _num_params(oracle)
    assert model.num_exits == len(oracle.classifier)  # type: ignore[arg-type]

    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = oracle(x)
        actual = model(x)
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape, f"exit {k}: shape {tuple(a.shape)} vs {tuple(e.shape)}"
        scale = e.abs().max().item()
        assert scale > 0
        error = (a - e).abs().max().item() / scale
        assert error <= 1e-4, f"exit {k}: relative error {error:.3g}"
        # The logits depend on the input (the random BatchNorm did not kill the signal).
        assert (e[0] - e[1]).abs().max().item() > 1e-3 * scale, f"exit {k}"

    ops, params = original.measure_model(oracle, image_size, image_size)
    costs = adanet.measure_exit_costs(model, image_size, convention="reference")
    assert len(costs) == len(ops)
    assert [float(c.macs) for c in costs] == [float(v) for v in ops]
    assert [c.params for c in costs] == params
    assert costs[-1].params == _num_params(oracle)


# Lists that repeat the value 1 after the first scale: the original downsamples a level-1
# branch at the end of its fused blocks (its nBlocks[:s+1][-0:] rule takes the whole list),
# so its exits see maps of different sizes and its AvgPool2d(2) heads fail at every input
# size. adanet does not downsample there. Nothing to compare; adanet must run with every
# exit at the coarsest resolution.
FIXED_LISTS: dict[str, tuple[dict[str, Any], int]] = {
    "cifar10_112": ({"scale_list": [1, 1, 2], "grFactor": [4, 2, 1], "bnFactor": [4, 2, 1]}, 32),
    "cifar10_1123": (
        {"scale_list": [1, 1, 2, 3], "grFactor": [4, 2, 2, 1], "bnFactor": [4, 2, 2, 1]},
        32,
    ),
    "imagenet_1112": (
        {
            "data": "ImageNet",
            "scale_list": [1, 1, 1, 2],
            "grFactor": [4, 2, 2, 1],
            "bnFactor": [4, 2, 2, 1],
        },
        224,
    ),
}


class _ShapeRecorder(nn.Module):
    """Stands in for an exit head: remembers the size of the map it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.size: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.size = tuple(x.shape[-2:])
        return x.new_zeros(x.shape[0], 1)


@pytest.mark.parametrize("case", sorted(FIXED_LISTS))
def test_repeated_level_one_scale_list_keeps_exits_at_coarsest_resolution(case: str) -> None:
    options, image_size = FIXED_LISTS[case]
    options = {"nChannels": 8, "growthRate": 4, "step": 2, **options}
    args = _original_args(**options)

    # The original's quirk: with its heads replaced by recorders (its AvgPool2d(2) heads
    # fail here), its exits see feature maps of different resolutions.
    oracle = original.RANet(copy.deepcopy(args)).eval()
    recorders = [_ShapeRecorder() for _ in oracle.classifier]
    oracle.classifier = nn.ModuleList(recorders)
    with torch.no_grad():
        oracle(torch.randn(1, 3, image_size, image_size))
    assert len({r.size for r in recorders}) > 1

    config = adanet.RANetConfig.from_reference_args(str(args))
    model = adanet.RANet.from_config(config).eval()
    stem_reduction = 1 if options.get("data", "cifar10").startswith("cifar") else 4
    coarsest = image_size // (stem_reduction * 2 ** (max(options["scale_list"]) - 1))
    x = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        state = model.begin(x)
        for k in range(model.num_exits):
            feature, state = model.advance(state, k)
            assert tuple(feature.shape[-2:]) == (coarsest, coarsest), f"exit {k}"
            logits = model.exits[k](feature)
            assert logits.shape == (2, config.num_classes)
            assert torch.isfinite(logits).all()
    costs = adanet.measure_exit_costs(model, image_size, convention="reference")
    assert len(costs) == model.num_exits
    assert costs[-1].params == _num_params(model)


def test_step_one_builds_and_trains_in_adanet() -> None:
    options = {"nChannels": 8, "growthRate": 4, "step": 1}
    # The original cannot build this: its fusion block reads an unbound loop variable.
    with pytest.raises(NameError):
        original.RANet(_original_args(**options))
    config = adanet.RANetConfig.from_reference_args(str(_original_args(**options)))
    assert config.step == 1
    model = adanet.RANet.from_config(config).train()
    x = torch.randn(2, 3, 32, 32)
    outputs = model(x)
    assert len(outputs) == model.num_exits == 6
    loss = sum(nn.functional.cross_entropy(o, torch.tensor([1, 2])) for o in outputs)
    assert isinstance(loss, torch.Tensor) and math.isfinite(loss.item())
    loss.backward()  # type: ignore[no-untyped-call]
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
