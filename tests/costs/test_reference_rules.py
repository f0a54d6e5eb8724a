"""Tests of adanet.costs.reference_rules: the originals' counter as rules per module type."""

from __future__ import annotations

import pytest
from torch import Tensor, nn

from adanet.costs import reference_rules


class _Scale(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return 2 * x


class _MyReLU(nn.ReLU):
    pass


def test_a_cost_rule_can_be_registered_for_a_module_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_rules, "_RULES", dict(reference_rules._RULES))
    assert reference_rules.reference_cost_rule(_Scale()) is None  # counts nothing by default

    def rule(module: nn.Module, x: Tensor, out: Tensor) -> float:
        return float(out.numel())

    reference_rules.register_reference_cost_rule(_Scale, rule)
    assert reference_rules.reference_cost_rule(_Scale()) is rule
    # A subclass without a rule of its own is counted as its base class.
    assert reference_rules.reference_cost_rule(_MyReLU()) is reference_rules.reference_cost_rule(
        nn.ReLU()
    )
    assert (
        reference_rules.reference_cost_rule(nn.ReLU6()) is None
    )  # not a ReLU: the original skips it
    with pytest.raises(TypeError, match=r"nn\.Module subclass"):
        reference_rules.register_reference_cost_rule(int, rule)  # type: ignore[arg-type]
