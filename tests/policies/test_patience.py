"""``PatienceExitPolicy`` (adanet.policies.patience): the rule against a brute-force reading
of it, its arguments, and its per-sample state."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from adanet import PatienceExitPolicy
from step_driver import run_incremental
from synthetic_logits import make_logits


def brute_force_patience(logits: Tensor, k: int) -> list[int]:
    preds = logits.argmax(dim=2).T.tolist()  # [samples][exits]
    num_exits = logits.shape[0]
    exits = []
    for row in preds:
        chosen = num_exits - 1
        for j in range(k - 1, num_exits):
            if len(set(row[j - k + 1 : j + 1])) == 1:
                chosen = j
                break
        exits.append(chosen)
    return exits


def test_patience_policy() -> None:
    policy = PatienceExitPolicy(3, 6)
    assert policy.measure == "patience"
    assert policy.patience == 3
    assert policy.num_exits == 6
    assert repr(policy) == "PatienceExitPolicy(3, num_exits=6)"
    for k, n in ((0, 6), (2, 0), (True, 3), (2.0, 3)):
        with pytest.raises(ValueError):
            PatienceExitPolicy(k, n)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_patience_rule_matches_brute_force(k: int) -> None:
    logits = make_logits(num_exits=6, num_samples=800, num_classes=3, seed=k)
    policy = PatienceExitPolicy(k, 6)
    expected = brute_force_patience(logits, k)
    assert policy.simulate(logits).tolist() == expected
    assert run_incremental(policy, logits).tolist() == expected
    if k == 1:
        assert expected == [0] * 800


def test_patience_step_rejects_missing_or_unindexed_state() -> None:
    policy = PatienceExitPolicy(2, 3)
    with pytest.raises(ValueError, match="initial_state"):
        policy.step(0, torch.randn(4, 3), {})
    with pytest.raises(ValueError, match="kept samples"):
        policy.step(0, torch.randn(4, 3), policy.initial_state(5))
