"""Comparing exit decisions of two computations without hinging on the last ulp.

A policy calibrated on some logits puts each threshold exactly on one sample's confidence.
Early exit on shrinking sub-batches, an optimized or exported copy, or another CPU (AVX2,
AVX-512, AMX kernels round differently) computes that confidence again, and its last bit
decides on which side of the threshold the sample falls. :func:`assert_same_decisions`
accepts either side for a sample whose confidence lies within a tolerance of a threshold, and
demands the simulated decision for every other sample.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adanet import EarlyExitPolicy

__all__ = ["TOLERANCE", "assert_same_decisions", "chosen_logits"]

#: Confidences this close to a threshold may fall on either side. Kernels differ by about
#: 1e-7 in a probability (1e-5 for the large logits of the reference checkpoints).
TOLERANCE = 1e-6


def assert_same_decisions(
    exit_index: Tensor, policy: Any, logits: Tensor, tolerance: float = TOLERANCE
) -> None:
    """Assert that ``exit_index`` is what ``policy`` decides on ``logits``, up to ties.

    For a threshold policy each sample must leave between the exit it takes with every
    threshold lowered by ``tolerance`` and the one it takes with every threshold raised by it;
    at most a tenth of the samples may sit that close, so a wrong engine still fails. Other
    policies (the patience rule ties only when two logits are equal) must agree exactly.

    Args:
        exit_index: ``[N]`` exits chosen by the computation under test.
        policy: The policy it ran.
        logits: ``[exits, N, classes]`` all-exit logits of the same samples.
        tolerance: Half-width of the band around each threshold where both sides pass.
    """
    logits = torch.stack(list(logits)) if not isinstance(logits, Tensor) else logits
    exit_index = exit_index.to(logits.device)
    if not isinstance(policy, EarlyExitPolicy):
        assert torch.equal(exit_index, policy.simulate(logits)), "unexpected decisions"
        return
    earliest = _shifted(policy, -tolerance).simulate(logits)
    latest = _shifted(policy, tolerance).simulate(logits)
    inside = (earliest <= exit_index) & (exit_index <= latest)
    assert bool(inside.all()), (
        f"samples {torch.nonzero(~inside).flatten().tolist()} left at "
        f"{exit_index[~inside].tolist()}, expected {policy.simulate(logits)[~inside].tolist()}"
    )
    # The samples a calibration put on its thresholds, and about a tenth more, may be close.
    close = int((earliest != latest).sum())
    allowed = max(2 * (policy.num_exits - 1), exit_index.numel() // 10)
    assert close <= allowed, f"{close} samples sit at a threshold (at most {allowed} may)"


def chosen_logits(logits: Tensor, exit_index: Tensor) -> Tensor:
    """Each sample's row of ``logits`` (``[exits, N, classes]``) at the exit it left at."""
    logits = torch.stack(list(logits)) if not isinstance(logits, Tensor) else logits
    exit_index = exit_index.to(logits.device)
    return logits[exit_index, torch.arange(logits.shape[1], device=logits.device)]


def _shifted(policy: EarlyExitPolicy, delta: float) -> EarlyExitPolicy:
    # Every measure is at most 1, and a confidence of exactly 1 (a saturated softmax) stays 1
    # under any kernel: a threshold of 1 is not raised past it.
    thresholds = [min(t + delta, 1.0) if t <= 1.0 else t + delta for t in policy.thresholds]
    return EarlyExitPolicy.from_dict({**policy.to_dict(), "thresholds": thresholds})
