"""adanet's RANet against data the original RANet code produced.

Every RANet case of the reference directory (see ``tests/conftest.py``) holds the
``args.txt`` line the original ``main.py`` wrote, a checkpoint in the original format with
random weights and random BatchNorm statistics, and what the original returned: each exit's
logits for a batch, the parameter count, and its ``op_counter.py`` MACs (and, for the small
cases, parameters) at every exit. adanet rebuilds the network from ``args.txt`` alone, loads
the checkpoint and must reproduce all of it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import adanet
from adanet.compat import read_reference_config

# These nets are small: one intra-op thread is faster, and far faster on a busy CPU.
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


def _load_case(stem: Path) -> tuple[adanet.RANet, dict[str, Any]]:
    config = read_reference_config(arch="RANet", path_or_text=f"{stem}.args.txt")
    model = adanet.RANet.from_config(config)
    adanet.compat.load_reference_checkpoint(model, f"{stem}.pth.tar")
    io: dict[str, Any] = torch.load(f"{stem}.io.pt", weights_only=True)
    return model.eval(), io


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_outputs_match_the_original(ranet_case: Path) -> None:
    model, io = _load_case(ranet_case)
    expected: list[torch.Tensor] = io["outputs"]
    assert model.num_exits == len(expected)
    with torch.no_grad():
        actual = model(io["input"])
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape, f"exit {k}: shape {tuple(a.shape)} vs {tuple(e.shape)}"
        scale = e.abs().max().item()
        assert scale > 0, f"exit {k}: the reference logits are all zero"
        error = (a - e).abs().max().item() / scale
        assert error <= 1e-4, f"exit {k}: error {error:.3g} relative to max|reference|"


def test_parameter_counts_and_costs_match_the_original(ranet_case: Path) -> None:
    model, io = _load_case(ranet_case)
    assert _num_params(model) == io["params"]
    costs = adanet.measure_exit_costs(model, int(io["image_size"]), convention="reference")
    assert [c.macs for c in costs] == [float(v) for v in io["macs_per_exit"]]
    if "params_per_exit" in io:  # the original counter's parameters reached by each exit
        assert [c.params for c in costs] == [int(v) for v in io["params_per_exit"]]
    assert costs[-1].params == io["params"]


def test_step_one_builds_and_trains_in_adanet() -> None:
    # The original cannot build step 1 (its fusion block reads a loop variable of an empty
    # loop; see docs/differences.md); adanet builds it and every parameter gets a gradient.
    config = adanet.RANetConfig(num_channels=8, growth_rate=4, step=1)
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
