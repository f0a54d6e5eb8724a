"""adanet's MSDNet against data the original MSDNet code produced.

Every MSDNet case of the reference directory (see ``tests/conftest.py``) holds the
``args.txt`` line of the original scripts, a checkpoint in the original format with random
weights and BatchNorm statistics, and what the original returned: each exit's logits for a
batch, the parameter count and its ``op_counter.py`` MACs (and, for the small cases,
parameters) at every exit. adanet rebuilds the network from ``args.txt`` alone, loads the
checkpoint and must reproduce all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adanet import MSDNet, measure_exit_costs
from adanet.compat import load_reference_checkpoint, read_reference_config

# These nets are small: one intra-op thread is faster, and far faster on a busy CPU.
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


def _load_case(stem: Path) -> tuple[MSDNet, dict[str, Any]]:
    config = read_reference_config(arch="msdnet", path_or_text=f"{stem}.args.txt")
    model = MSDNet.from_config(config)
    load_reference_checkpoint(model, f"{stem}.pth.tar")
    io: dict[str, Any] = torch.load(f"{stem}.io.pt", weights_only=True)
    return model.eval(), io


def test_outputs_match_the_original(msdnet_case: Path) -> None:
    model, io = _load_case(msdnet_case)
    expected: list[torch.Tensor] = io["outputs"]
    assert model.num_exits == len(expected)
    with torch.no_grad():
        actual = model(io["input"])
    for k, (ours, theirs) in enumerate(zip(actual, expected, strict=True)):
        assert ours.shape == theirs.shape, f"exit {k}: {tuple(ours.shape)} vs {theirs.shape}"
        scale = float(theirs.abs().max())
        assert scale > 0, f"exit {k}: the reference logits are all zero"
        error = float((ours - theirs).abs().max()) / scale
        assert error <= 1e-4, f"exit {k}: error {error:.3g} relative to max|reference|"


def test_parameter_counts_and_costs_match_the_original(msdnet_case: Path) -> None:
    model, io = _load_case(msdnet_case)
    assert sum(p.numel() for p in model.parameters()) == io["params"]
    costs = measure_exit_costs(model, int(io["image_size"]), convention="reference")
    assert [c.macs for c in costs] == [float(v) for v in io["macs_per_exit"]]
    if "params_per_exit" in io:  # the original counter's parameters reached by each exit
        assert [c.params for c in costs] == [int(v) for v in io["params_per_exit"]]
    assert costs[-1].params == io["params"]
