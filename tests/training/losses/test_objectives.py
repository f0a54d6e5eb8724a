"""adanet.training.losses.objectives: every value is worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from adanet.training.losses import (
    IMTA_GAMMA,
    IMTA_TEMPERATURE,
    MultiExitLoss,
    multi_exit_cross_entropy,
    self_distillation_loss,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def _two_exit_batch() -> tuple[list[torch.Tensor], torch.Tensor]:
    """Two exits, two samples, two classes, with hand-computable cross-entropies.

    exit 0: logits [0, 0] -> p = [1/2, 1/2] -> CE = ln 2 for either label (mean ln 2).
    exit 1: logits [ln 3, 0] -> p = [3/4, 1/4] -> CE = ln(4/3) (label 0), ln 4 (label 1).
    """
    exit0 = torch.zeros(2, 2)
    exit1 = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    target = torch.tensor([0, 1])
    return [exit0, exit1], target


def test_multi_exit_ce_default_is_plain_sum() -> None:
    logits, target = _two_exit_batch()
    expected = LN2 + (math.log(4.0 / 3.0) + math.log(4.0)) / 2
    assert multi_exit_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_multi_exit_ce_weighted() -> None:
    logits, target = _two_exit_batch()
    expected = 0.5 * LN2 + 2.0 * (math.log(4.0 / 3.0) + math.log(4.0)) / 2
    got = multi_exit_cross_entropy(logits, target, [0.5, 2.0]).item()
    assert got == pytest.approx(expected, rel=1e-6)
    linear = multi_exit_cross_entropy(logits, target, "linear").item()
    assert linear == pytest.approx(0.5 * LN2 + (math.log(4.0 / 3.0) + math.log(4.0)) / 2)


def test_multi_exit_ce_errors() -> None:
    logits, target = _two_exit_batch()
    with pytest.raises(ValueError, match="empty"):
        multi_exit_cross_entropy([], target)
    with pytest.raises(ValueError, match="exit weights"):
        multi_exit_cross_entropy(logits, target, [1.0])
    with pytest.raises(ValueError, match="batch size"):
        multi_exit_cross_entropy([torch.zeros(3, 2)], target)
    with pytest.raises(ValueError, match="batch dimension"):
        multi_exit_cross_entropy(logits, torch.tensor(0))


def test_imta_defaults() -> None:
    # IMTA args.py: -T default 3.0, --gamma default 0.9.
    assert IMTA_TEMPERATURE == 3.0
    assert IMTA_GAMMA == 0.9


def _distill_case() -> tuple[list[torch.Tensor], torch.Tensor, float]:
    """One sample, label 0, T = 2.

    final logits [2 ln 3, 0]: CE = -ln(9/10); at T = 2 the soft target is q = [3/4, 1/4].
    exit 0 logits [0, 0]: CE = ln 2; at T = 2, p = [1/2, 1/2].
    KL(q || p) = 3/4 ln(3/2) + 1/4 ln(1/2).
    """
    exit0 = torch.zeros(1, 2, requires_grad=True)
    final = torch.tensor([[2 * LN3, 0.0]], requires_grad=True)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    return [exit0, final], torch.tensor([0]), kl


def test_self_distillation_value_batchmean() -> None:
    logits, target, kl = _distill_case()
    gamma, temp = 0.25, 2.0
    expected = math.log(10.0 / 9.0) + (1 - gamma) * LN2 + gamma * temp**2 * kl
    got = self_distillation_loss(logits, target, temperature=temp, gamma=gamma)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_self_distillation_batchmean_is_per_sample_average() -> None:
    logits, _, kl = _distill_case()
    doubled = [torch.cat([t, t]).detach() for t in logits]
    got = self_distillation_loss(doubled, torch.tensor([0, 0]), temperature=2.0, gamma=0.25)
    expected = math.log(10.0 / 9.0) + 0.75 * LN2 + 0.25 * 4.0 * kl
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_self_distillation_imta_mean_reduction_divides_by_classes() -> None:
    # nn.KLDivLoss() in IMTA averages over batch * classes (here 1 * 2 elements).
    logits, target, kl = _distill_case()
    got = self_distillation_loss(logits, target, 2.0, 0.25, kl_reduction="mean")
    expected = math.log(10.0 / 9.0) + 0.75 * LN2 + 0.25 * 4.0 * kl / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_self_distillation_weights() -> None:
    logits, target, kl = _distill_case()
    got = self_distillation_loss(logits, target, 2.0, 0.25, weights=[2.0, 0.5])
    expected = 0.5 * math.log(10.0 / 9.0) + 2.0 * (0.75 * LN2 + 0.25 * 4.0 * kl)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_self_distillation_gradients() -> None:
    logits, target, _ = _distill_case()
    self_distillation_loss(logits, target, temperature=2.0, gamma=0.25).backward()
    exit0, final = logits
    assert exit0.grad is not None and final.grad is not None
    # Final exit: plain CE only (the teacher is detached): softmax - onehot = [-0.1, 0.1].
    torch.testing.assert_close(final.grad, torch.tensor([[-0.1, 0.1]]))
    # Exit 0: (1 - g) (p - y) + g * T * (p_T - q) = 0.75 [-1/2, 1/2] + 0.5 [-1/4, 1/4].
    torch.testing.assert_close(exit0.grad, torch.tensor([[-0.5, 0.5]]))


def test_self_distillation_gamma_zero_is_ce() -> None:
    logits, target = _two_exit_batch()
    got = self_distillation_loss(logits, target, gamma=0.0)
    expected = LN2 + (math.log(4.0 / 3.0) + math.log(4.0)) / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_self_distillation_single_exit_and_teacher() -> None:
    final = torch.tensor([[2 * LN3, 0.0]])
    target = torch.tensor([0])
    assert self_distillation_loss([final], target).item() == pytest.approx(math.log(10 / 9))
    # An explicit teacher replaces the final exit as soft target: teacher == exit -> KL = 0.
    exit0 = torch.zeros(1, 2)
    got = self_distillation_loss([exit0, final], target, 2.0, 0.25, teacher=torch.zeros(1, 2))
    assert got.item() == pytest.approx(math.log(10 / 9) + 0.75 * LN2, rel=1e-6)


@pytest.mark.parametrize(
    ("temperature", "gamma", "message"),
    [
        (0.0, 0.5, "temperature"),
        (-1.0, 0.5, "temperature"),
        (float("nan"), 0.5, "temperature"),
        (float("inf"), 0.5, "temperature"),
        (1.0, -0.1, "gamma"),
        (1.0, 1.5, "gamma"),
        (1.0, float("nan"), "gamma"),
    ],
)
def test_self_distillation_bad_hyperparameters(
    temperature: float, gamma: float, message: str
) -> None:
    logits, target = _two_exit_batch()
    with pytest.raises(ValueError, match=message):
        self_distillation_loss(logits, target, temperature, gamma)
    with pytest.raises(ValueError, match=message):
        MultiExitLoss("distill", temperature=temperature, gamma=gamma)


def test_self_distillation_other_errors() -> None:
    logits, target = _two_exit_batch()
    with pytest.raises(ValueError, match="empty"):
        self_distillation_loss([], target)
    with pytest.raises(ValueError, match="exit weights"):
        self_distillation_loss(logits, target, weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="kl_reduction"):
        self_distillation_loss(logits, target, kl_reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="teacher"):
        self_distillation_loss(logits, target, teacher=torch.zeros(2, 3))


def test_multi_exit_loss_module() -> None:
    logits, target = _two_exit_batch()
    plain = LN2 + (math.log(4.0 / 3.0) + math.log(4.0)) / 2
    assert MultiExitLoss()(logits, target).item() == pytest.approx(plain, rel=1e-6)
    assert MultiExitLoss("ce", weights=[0.0, 1.0])(logits, target).item() == pytest.approx(
        plain - LN2, rel=1e-6
    )
    d_logits, d_target, kl = _distill_case()
    loss = MultiExitLoss("distill", temperature=2.0, gamma=0.25)
    expected = math.log(10.0 / 9.0) + 0.75 * LN2 + 0.25 * 4.0 * kl
    assert loss(d_logits, d_target).item() == pytest.approx(expected, rel=1e-6)
    assert "distill" in repr(loss)


def test_multi_exit_loss_module_errors() -> None:
    with pytest.raises(ValueError, match="kind must be one of 'ce', 'distill', got 'mse'"):
        MultiExitLoss("mse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown weight scheme"):
        MultiExitLoss("ce", weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        MultiExitLoss("ce", weights=[1.0, -1.0])
    logits, target = _two_exit_batch()
    with pytest.raises(ValueError, match="exit weights"):
        MultiExitLoss("ce", weights=[1.0, 1.0, 1.0])(logits, target)
