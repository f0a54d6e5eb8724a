"""RANet with a ``scale_list`` that repeats the value 1 after the first scale (e.g. 1-1-2-3).

The original cannot run these lists: it picks the blocks where a branch halves its
resolution with ``nBlocks[:s+1][-(level-1):]``, which for level 1 is ``[-0:]``, the whole
list, so a level-1 branch downsamples where it should not, its exits see maps of different
sizes and its ``AvgPool2d(2)`` heads fail at every input size. There is no reference output to
compare with, so these tests check what the lists mean, from first principles:

* the stem strides once wherever two neighbouring scales have different levels, so branch
  ``s`` starts at ``1 / (stem * 2^c_s)`` of the image, ``c_s`` being the number of level
  changes between scale ``s`` and the finest scale (``stem`` is 1 for the CIFAR stem, 4 for
  the ImageNet one);
* a level-1 branch runs entirely at the coarsest resolution, ``1 / (stem * 2^(d - 1))`` of the
  image with ``d`` distinct levels: it never downsamples;
* every branch ends at the coarsest resolution, so every exit head sees the coarsest map.

Is such a network equal to one spelled without the repetition? Working it out from
``RANet.__init__``: a branch ``s >= 1`` of level ``l >= 2`` always downsamples in its block
number ``blocks_per_scale[s - 1]`` (the last of its fused blocks, always present) and, when it
has two or more blocks, ends a block with a transition (``l - 1`` of them); a level-1 branch
``s >= 1`` is fused with the previous branch but has neither. No list without a repeated 1
builds a fused branch without downsampling, and removing the repeated scale removes a whole
branch with its exits (and changes the stem, which computes the coarser scales from the
finer ones). So no spelling without the repetition is equivalent, for any configuration, and
there is no equality to test; the tests below pin the resolutions instead, and that the
networks train.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adanet
from adanet.blocks import ScaleBlock

# name -> (config fields, image size)
CASES: dict[str, tuple[dict[str, object], int]] = {
    "cifar_112": ({"scale_list": (1, 1, 2)}, 32),
    "cifar_1123": (
        {
            "scale_list": (1, 1, 2, 3),
            "growth_factors": (4, 2, 2, 1),
            "bottleneck_factors": (4, 2, 2, 1),
        },
        32,
    ),
    "cifar_1112_lg": (
        {
            "scale_list": (1, 1, 1, 2),
            "growth_factors": (4, 2, 2, 1),
            "bottleneck_factors": (4, 2, 2, 1),
            "step_mode": "lg",
            "num_blocks": 1,
            "block_step": 1,
        },
        32,
    ),
    "imagenet_1112": (
        {
            "scale_list": (1, 1, 1, 2),
            "growth_factors": (4, 2, 2, 1),
            "bottleneck_factors": (4, 2, 2, 1),
            "variant": "imagenet",
        },
        224,
    ),
}


# These nets are small: one intra-op thread is faster, and far faster on a busy CPU.
pytestmark = pytest.mark.usefixtures("single_thread")


def _build(case: str) -> tuple[adanet.RANet, int]:
    fields, size = CASES[case]
    config = adanet.RANetConfig(num_channels=8, growth_rate=4, step=2, **fields)  # type: ignore[arg-type]
    return adanet.RANet(config).eval(), size


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_block_and_exit_sees_the_resolution_the_list_means(case: str) -> None:
    model, size = _build(case)
    levels = model.config.scale_list
    scales = len(levels)
    stem = 1 if model.config.variant == "cifar" else 4
    coarsest = size // (stem * 2 ** (len(set(levels)) - 1))

    seen: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}

    def record(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
            out = output[0] if isinstance(output, tuple) else output
            assert isinstance(out, torch.Tensor)
            seen[name] = (tuple(inputs[0].shape[-2:]), tuple(out.shape[-2:]))  # type: ignore[assignment]

        return hook

    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, ScaleBlock) or (name.startswith("exits.") and name.count(".") == 1)
    ]
    try:
        with torch.no_grad():
            logits = model(torch.randn(2, 3, size, size))
    finally:
        for handle in handles:
            handle.remove()
    assert all(torch.isfinite(out).all() for out in logits)

    for k in range(model.num_exits):
        assert seen[f"exits.{k}"][0] == (coarsest, coarsest), f"exit {k}"
    for s, level in enumerate(levels):
        changes = sum(levels[t] != levels[t + 1] for t in range(s, scales - 1))
        start = size // (stem * 2**changes)
        blocks = model.config.blocks_per_scale[s]
        first_in, _ = seen[f"branches.{s}.blocks.0"]
        assert first_in == (start, start), f"branch {s} starts at {first_in}, not {start}"
        _, last_out = seen[f"branches.{s}.blocks.{blocks - 1}"]
        assert last_out == (coarsest, coarsest), f"branch {s} ends at {last_out}"
        if level == 1:
            for b in range(blocks):
                assert seen[f"branches.{s}.blocks.{b}"] == ((coarsest,) * 2, (coarsest,) * 2), (
                    f"level-1 branch {s}, block {b} changed resolution"
                )


@pytest.mark.parametrize("case", ["cifar_1123", "cifar_1112_lg"])
def test_repeated_level_one_lists_train(case: str) -> None:
    model, size = _build(case)
    model.train()
    x, y = torch.randn(2, 3, size, size), torch.tensor([1, 2])
    loss = adanet.training.MultiExitLoss()(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Every parameter is used by some exit: no branch is dead weight.
    assert all(bool(p.grad.abs().sum() > 0) for p in model.parameters() if p.grad is not None)
