"""``run_to_exit``: the static network truncated at one exit, running no other head."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import adanet
from adanet import RANet, RANetConfig


@pytest.fixture(scope="module")
def model() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=2, block_step=1, step=1, num_classes=4)).eval()


def test_every_exit_equals_the_forward(model: RANet) -> None:
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        for k in range(model.num_exits):
            torch.testing.assert_close(adanet.run_to_exit(model, x, k), expected[k])
        torch.testing.assert_close(adanet.run_to_exit(model, x, -1), expected[-1])


def test_no_other_head_runs(model: RANet) -> None:
    ran: list[int] = []
    handles = [
        head.register_forward_hook(lambda _m, _i, _o, k=k: ran.append(k))
        for k, head in enumerate(model.exits)
    ]
    try:
        with torch.no_grad():
            adanet.run_to_exit(model, torch.randn(2, 3, 32, 32), 1)
    finally:
        for handle in handles:
            handle.remove()
    assert ran == [1]


def test_no_block_after_the_exit_runs(model: RANet) -> None:
    last: list[str] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, _o, name=name: last.append(name))
        for name, module in model.named_modules()
        if name.startswith("branches.") and name.count(".") == 3  # branches.s.blocks.b
    ]
    try:
        with torch.no_grad():
            adanet.run_to_exit(model, torch.randn(2, 3, 32, 32), 0)
            first = list(last)
            last.clear()
            model(torch.randn(2, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert 0 < len(first) < len(last)


@pytest.mark.parametrize(
    ("exit_index", "error", "words"),
    [(99, ValueError, "out of range"), (-99, ValueError, "out of range"), (1.0, TypeError, "int")],
)
def test_bad_exit_index(model: RANet, exit_index: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        adanet.run_to_exit(model, torch.randn(1, 3, 32, 32), exit_index)  # type: ignore[arg-type]


def test_bad_model_and_input(model: RANet) -> None:
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        adanet.run_to_exit(nn.Linear(2, 2), torch.randn(1, 2), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input channels"):
        adanet.run_to_exit(model, torch.randn(1, 1, 32, 32), 0)


def test_gradients_flow_as_in_the_forward(model: RANet) -> None:
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out: Tensor = adanet.run_to_exit(model, x, 0)
    out.sum().backward()
    assert x.grad is not None
