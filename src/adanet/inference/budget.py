"""A hard per-batch budget for early exit: never spend more than ``B`` on one batch.

Costs are cumulative per exit (``costs[k]`` is what one sample pays when it leaves at exit
``k``, the convention of :mod:`adanet.costs`). After exit ``k`` every sample still in has paid
``costs[k]``, and every sample that stays pays at least ``costs[k + 1] - costs[k]`` more. So
before the samples that stay go on, the budget left decides how many of them can afford the
next exit; when the policy wants more to stay, the extra ones are forced out now. The ones
forced out are those closest to leaving by the policy's own measure (:func:`leave_priority`),
so what is lost is as small as this greedy rule can make it. The spend of the batch therefore
never exceeds ``B`` (up to float rounding of non-integer costs; integer MAC counts are exact),
and a batch whose budget covers its samples' way to the next exit everywhere is not touched.

* :func:`enforce_budget`: the pure rule for one exit, on a priority, a leave mask and numbers.
* :class:`BudgetGuard`: the same rule across the exits of one batch, as
  :func:`adanet.early_exit` uses it (``budget=``).
* :func:`simulate_with_budget`: the decisions of ``early_exit(..., budget=B)`` from all-exit
  logits, without the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adanet._validation import check_costs, is_real
from adanet.models.state import select_samples
from adanet.policies.confidence import exit_confidences
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.protocol import ExitDecider, LogitsInput, check_policy, stack_logits
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "BudgetGuard",
    "check_budget",
    "enforce_budget",
    "leave_priority",
    "simulate_with_budget",
    "staying_allowance",
]


def check_budget(budget: object) -> float:
    """``budget`` as a float: a non-negative real number (``inf`` means no limit).

    Raises:
        TypeError: Not a real number (a bool, a string, a tensor of several values).
        ValueError: NaN or negative.
    """
    if isinstance(budget, Tensor) and budget.numel() == 1 and not budget.is_complex():
        budget = float(budget)
    if not is_real(budget):
        raise TypeError(f"budget must be a real number (cost per batch), got {budget!r}")
    value = float(budget)
    if math.isnan(value) or value < 0.0:
        raise ValueError(f"budget must be a non-negative number (cost per batch), got {value!r}")
    return value


def staying_allowance(
    num_in: int, spent: float, costs: Sequence[float], exit_index: int, budget: float
) -> int:
    """How many of the ``num_in`` samples at exit ``exit_index`` can afford to go on.

    Args:
        num_in: Samples that reached exit ``exit_index``.
        spent: Cost of the samples that left the batch at earlier exits.
        costs: Cumulative cost of each exit.
        exit_index: The exit just reached; not the last.
        budget: Largest cost of the whole batch.

    Returns:
        A count in ``[0, num_in]``: each sample that stays pays at least the step to the next
        exit, and that many steps fit in what the budget has left.
    """
    committed = spent + num_in * costs[exit_index]
    step = costs[exit_index + 1] - costs[exit_index]
    if step <= 0.0:
        return num_in  # the next exit is free: staying never costs more
    room = budget - committed
    if room <= 0.0:
        return 0
    allowed = min(num_in, math.floor(room / step))
    # The division rounds; step back while the product (computed as the check does) overshoots.
    while allowed > 0 and committed + allowed * step > budget:
        allowed -= 1
    return allowed


def enforce_budget(
    priority: Tensor,
    leaving: Tensor,
    *,
    spent: float,
    costs: Sequence[float],
    exit_index: int,
    budget: float,
) -> Tensor:
    """The policy's leave mask at one exit, with the samples the budget cannot carry forced out.

    Args:
        priority: ``[n]`` how close each sample is to leaving (larger = closer; NaN = farthest).
        leaving: ``[n]`` bool, the policy's decision (True = leaves now).
        spent: Cost of the samples that left the batch at earlier exits.
        costs: Cumulative cost of each exit.
        exit_index: The exit the ``n`` samples just reached; not the last.
        budget: Largest cost of the whole batch.

    Returns:
        ``leaving`` itself when the budget carries every sample that wants to stay; else a new
        mask where the staying samples of largest priority also leave, as many as needed (ties
        go to the earlier sample).
    """
    num_in = int(leaving.shape[0])
    allowed = staying_allowance(num_in, spent, costs, exit_index, budget)
    staying = int((~leaving).sum())
    excess = staying - allowed
    if excess <= 0:
        return leaving
    candidates = torch.nonzero(~leaving).flatten()
    scores = priority[candidates].double().nan_to_num(nan=-math.inf)
    order = torch.argsort(scores, descending=True, stable=True)
    adjusted = leaving.clone()
    adjusted[candidates[order[:excess]]] = True
    return adjusted


def leave_priority(policy: ExitDecider, exit_index: int, logits: Tensor, state: Any) -> Tensor:
    """How close each sample is to leaving under ``policy`` (larger = closer), ``[n]``.

    A policy may define ``leave_priority(exit_index, logits, state)`` itself; otherwise a
    threshold policy's own confidence (measure and temperature) is used, the patience rule's
    streak (ties broken by the largest softmax probability), and the largest softmax
    probability for any other policy. ``state`` is the one ``step`` returned for these samples.
    """
    own = getattr(policy, "leave_priority", None)
    if callable(own):
        result: Tensor = own(exit_index, logits, state)
        return result
    if isinstance(policy, EarlyExitPolicy):
        temperatures = policy.temperatures
        temperature = None if temperatures is None else temperatures[exit_index]
        return exit_confidences(logits, policy.measure, temperature)
    confidence = exit_confidences(logits, "max_prob")
    if isinstance(policy, PatienceExitPolicy) and isinstance(state, dict) and "streak" in state:
        # A longer streak is closer to the k needed; max_prob is in [0, 1], below one step of 2.
        streak: Tensor = state["streak"]
        return 2.0 * streak.to(torch.float64) + confidence.to(torch.float64)
    return confidence


class BudgetGuard:
    """The budget of one batch, applied exit by exit (see the module docstring).

    Args:
        policy: The policy deciding; its measure orders the samples forced out.
        costs: Cumulative cost of each exit for one sample.
        budget: Largest cost of the whole batch, in the units of ``costs``.
        batch_size: Samples in the batch.

    Raises:
        TypeError: A budget that is not a real number.
        ValueError: A negative or NaN budget, or one that cannot pay the first exit of every
            sample (``batch_size * costs[0] > budget``).
    """

    def __init__(
        self, policy: ExitDecider, costs: Sequence[float] | Tensor, budget: float, batch_size: int
    ) -> None:
        self.policy = policy
        self.costs = check_costs(costs, policy.num_exits)
        self.budget = check_budget(budget)
        floor = batch_size * self.costs[0]
        if floor > self.budget:
            raise ValueError(
                f"budget {self.budget!r} cannot pay the first exit of all {batch_size} images "
                f"({batch_size} x {self.costs[0]!r} = {floor!r}); give at least that, or a "
                "smaller batch"
            )
        self.spent = 0.0

    def limit(self, exit_index: int, logits: Tensor, leaving: Tensor, state: Any) -> Tensor:
        """The leave mask at ``exit_index`` within the budget; records what the leavers cost.

        Args:
            exit_index: The exit reached (not the last).
            logits: ``[n, classes]`` logits of the samples still in.
            leaving: ``[n]`` bool, the policy's decision.
            state: The policy's state for these samples, as ``step`` returned it.
        """
        if math.isinf(self.budget):
            return leaving
        allowed = staying_allowance(
            int(leaving.shape[0]), self.spent, self.costs, exit_index, self.budget
        )
        if int((~leaving).sum()) > allowed:
            priority = leave_priority(self.policy, exit_index, logits, state)
            leaving = enforce_budget(
                priority,
                leaving,
                spent=self.spent,
                costs=self.costs,
                exit_index=exit_index,
                budget=self.budget,
            )
        self.spent += int(leaving.sum()) * self.costs[exit_index]
        return leaving


def simulate_with_budget(
    policy: ExitDecider,
    logits: LogitsInput,
    costs: Sequence[float] | Tensor,
    budget: float,
) -> Tensor:
    """Exit indices of ``early_exit(model, x, policy, costs=costs, budget=budget)`` from the
    all-exit logits of the batch, without running the network.

    The policy is driven exactly as :func:`adanet.early_exit` drives it: ``step`` on the samples
    still in, in input order, with the state compacted after each exit. A policy with side
    effects in ``step`` has them here as well.

    Args:
        policy: Any :class:`adanet.ExitDecider`.
        logits: ``[exits, N, classes]`` (or one ``[N, classes]`` tensor per exit).
        costs: Cumulative cost of each exit for one sample.
        budget: Largest cost of the batch.

    Returns:
        ``[N]`` int64 exit indices.

    Raises:
        ValueError: As :class:`BudgetGuard`, or on logits that do not fit the policy.
    """
    policy = check_policy(policy)
    stacked = stack_logits(logits)
    num_exits, n = int(stacked.shape[0]), int(stacked.shape[1])
    if num_exits != policy.num_exits:
        raise ValueError(
            f"the policy decides for {policy.num_exits} exits but the logits have {num_exits}"
        )
    guard = BudgetGuard(policy, costs, budget, n)
    exits = torch.full((n,), num_exits - 1, dtype=torch.long, device=stacked.device)
    remaining = torch.arange(n, device=stacked.device)
    state = policy.initial_state(n, stacked.device)
    for k in range(num_exits - 1):
        current = stacked[k].index_select(0, remaining)
        leaving, state = policy.step(k, current, state)
        leaving = guard.limit(k, current, leaving.to(torch.bool), state)
        exits[remaining[leaving]] = k
        kept = torch.nonzero(~leaving).flatten()
        if kept.numel() == 0:
            break
        if kept.numel() < remaining.numel():
            state = select_samples(state, kept)
            remaining = remaining[kept]
    return exits
