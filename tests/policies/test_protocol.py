"""Shared checks of the ``ExitDecider`` protocol module."""

from __future__ import annotations

import pytest

import adanet
from adanet.policies.protocol import check_batch_size


@pytest.mark.parametrize("bad", [-1, True, 2.0, "3", None])
def test_initial_state_refuses_a_bad_batch_size_for_every_builtin_policy(bad: object) -> None:
    policies = [adanet.EarlyExitPolicy([0.5, 0.5]), adanet.PatienceExitPolicy(2, 3)]
    for policy in policies:
        with pytest.raises(ValueError, match="batch_size must be an int >= 0"):
            policy.initial_state(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(")):
        check_batch_size(bad)


def test_zero_and_positive_batch_sizes_are_accepted() -> None:
    assert check_batch_size(0) == 0
    state = adanet.PatienceExitPolicy(2, 3).initial_state(4)
    assert all(value.shape[0] == 4 for value in state.values())
