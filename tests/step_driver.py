"""Drives a policy's incremental API the way an early-exit loop does, for the policy tests."""

from __future__ import annotations

import torch
from torch import Tensor

from adanet.policies.protocol import ExitDecider


def run_incremental(policy: ExitDecider, logits: Tensor) -> Tensor:
    """Each sample's exit when ``policy.step`` decides exit by exit on ``[E, N, C]`` logits and
    the samples that leave are dropped from the logits and the state, as real early exit does."""
    num_exits, num_samples, _ = logits.shape
    exits = torch.full((num_samples,), -1, dtype=torch.long, device=logits.device)
    alive = torch.arange(num_samples, device=logits.device)
    state = policy.initial_state(num_samples, logits.device)
    for k in range(num_exits):
        leave, state = policy.step(k, logits[k, alive], state)
        assert leave.dtype == torch.bool and leave.shape == alive.shape
        exits[alive[leave]] = k
        keep = ~leave
        alive = alive[keep]
        state = {key: value[keep] for key, value in state.items()}
    assert alive.numel() == 0
    return exits
