"""adanet.training.losses.equilibrium: gradient rescaling, worked out by hand."""

from __future__ import annotations

import pytest
import torch

from adanet.training.losses import (
    equilibrium_exit,
    equilibrium_scale,
    gradient_rescale,
)


def test_gradient_rescale_forward_identity_and_backward_scale() -> None:
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = gradient_rescale(x, 0.25)
    torch.testing.assert_close(y, x.detach())
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.tensor([0.25, 0.5, 0.75]))


def test_gradient_rescale_zero_blocks_gradient_and_rejects_nan() -> None:
    x = torch.ones(2, requires_grad=True)
    gradient_rescale(x, 0.0).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.zeros(2))
    with pytest.raises(ValueError, match=r"scale must be a number in \(-inf, inf\), got nan"):
        gradient_rescale(x, float("nan"))


def test_equilibrium_scale_values() -> None:
    # IMTA: 1 / (nBlocks - i) before the classifier, nBlocks - i - 1 after it.
    assert equilibrium_scale(0, 4) == (0.25, 3.0)
    assert equilibrium_scale(1, 4) == (1 / 3, 2.0)
    assert equilibrium_scale(3, 4) == (1.0, 0.0)
    for bad in [(-1, 4), (4, 4)]:
        with pytest.raises(ValueError, match="exit_index"):
            equilibrium_scale(*bad)
    with pytest.raises(ValueError, match="num_exits"):
        equilibrium_scale(0, 0)


def test_equilibrium_exit_gradient_mix() -> None:
    # Head gradient a, trunk gradient b at exit i of n: total (a + (n - i - 1) b) / (n - i).
    a, b, n, i = 2.0, 5.0, 4, 1
    x = torch.ones(3, requires_grad=True)
    head_out, trunk = equilibrium_exit(x, lambda t: (a * t).sum(), i, n)
    torch.testing.assert_close(trunk, x.detach())
    (head_out + (b * trunk).sum()).backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.full((3,), (a + 2 * b) / 3))


def test_equilibrium_keeps_gradient_constant_along_a_chain() -> None:
    # n identity blocks, each followed by an exit whose loss is sum(h). Without GE block k
    # receives gradient n - k (one per later exit); with GE every block receives exactly 1.
    n = 5

    def run(use_ge: bool) -> list[float]:
        x = torch.ones(1, requires_grad=True)
        h = x
        feats: list[torch.Tensor] = []
        total = torch.zeros(())
        for k in range(n):
            h = h * 1.0  # identity "block"
            h.retain_grad()
            feats.append(h)
            if use_ge:
                out, h = equilibrium_exit(h, torch.sum, k, n)
            else:
                out = h.sum()
            total = total + out
        total.backward()
        return [float(f.grad.item()) for f in feats]  # type: ignore[union-attr]

    assert run(False) == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert run(True) == pytest.approx([1.0] * n)
