"""Calibration of threshold policies for a share of samples per exit or for a mean cost.

:func:`calibrate_shares` is the greedy rule of the RANet / MSDNet reference
(``Tester.dynamic_eval_find_threshold``), vectorised; :func:`greedy_thresholds` is the same
rule on precomputed confidences. :func:`calibrate_for_cost` searches the reference's geometric
family (:func:`geometric_exit_fractions`) for a mean-cost budget. For a target accuracy drop,
with or without a statistical guarantee, see :mod:`adanet.calibration.risk`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor

from adanet._validation import check_costs, is_int, is_real, require_samples
from adanet.policies.confidence import check_measure, exit_confidences
from adanet.policies.fields import check_temperatures, normalise_input_size
from adanet.policies.protocol import LogitsInput, stack_logits
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "calibrate_for_cost",
    "calibrate_shares",
    "geometric_exit_fractions",
    "greedy_thresholds",
    "sort_confidence",
]

# Bisection range for the geometric family's p in calibrate_for_cost: at these ends almost all
# samples (all but about 1 in 10^4) are assigned to the first and the last exit respectively.
_LOG_P_MIN: Final[float] = math.log(1e-4)
_LOG_P_MAX: Final[float] = math.log(1e4)
_BISECTION_STEPS: Final[int] = 40


def geometric_exit_fractions(p: float, num_exits: int) -> list[float]:
    """Share of samples meant to leave at each exit in the reference budgeted protocol.

    The share at exit ``k`` (``k = 1 .. num_exits``) is proportional to ``p ** k``, normalised to
    sum to one: ``p < 1`` favours early exits, ``p > 1`` late ones, ``p == 1`` is uniform. The
    shares are computed in float64 (stable for any ``p`` and number of exits); the reference
    computes them in float32, which :mod:`adanet.compat.budgeted_protocol` repeats.

    Args:
        p: Ratio between the shares of consecutive exits; must be positive.
        num_exits: Number of exits; at least 1.

    Returns:
        ``num_exits`` non-negative floats that sum to one.

    Raises:
        TypeError: If ``p`` is not a real number.
        ValueError: If ``p <= 0`` (or not finite) or ``num_exits < 1``.
    """
    if not is_int(num_exits) or num_exits < 1:
        raise ValueError(f"num_exits must be an integer >= 1, got {num_exits!r}")
    if not is_real(p):
        raise TypeError(f"p must be a real number, got {p!r}")
    p = float(p)
    if not math.isfinite(p) or p <= 0.0:
        raise ValueError(f"p must be a positive finite number, got {p!r}")
    log_p = math.log(p)
    # Normalise in log space relative to the largest term so p**k cannot overflow or underflow
    # for large p or many exits.
    top = num_exits if log_p > 0 else 1
    weights = [math.exp((k - top) * log_p) for k in range(1, num_exits + 1)]
    total = math.fsum(weights)
    return [w / total for w in weights]


def _sort(confidence: Tensor) -> tuple[Tensor, Tensor]:
    result = confidence.sort(dim=1, descending=True)
    return result.values, result.indices


def _greedy(
    confidence: Tensor, exit_counts: Sequence[int], presorted: tuple[Tensor, Tensor]
) -> tuple[float, ...]:
    num_exits, num_samples = confidence.shape
    sorted_values, sorted_index = presorted
    remaining = torch.ones(num_samples, dtype=torch.bool, device=confidence.device)
    # A sample with no confidence (NaN, or -inf from NaN logits) never fills a quota. NaN sorts
    # first in torch's descending sort, but as it is never counted the walk passes over it.
    scored = confidence > -math.inf
    thresholds: list[float] = []
    for k in range(num_exits - 1):
        out_n = exit_counts[k]
        threshold = math.inf
        if out_n >= 1:
            available = remaining & scored[k]
            # seen[i]: available samples among the i+1 most confident at exit k.
            seen = available[sorted_index[k]].cumsum(0)
            position = int(torch.searchsorted(seen, out_n))
            if position < num_samples:
                threshold = float(sorted_values[k, position])
                remaining &= ~(confidence[k] >= threshold)
        thresholds.append(threshold)
    thresholds.append(-math.inf)
    return tuple(thresholds)


def greedy_thresholds(
    confidence: Tensor,
    exit_counts: Sequence[int],
    *,
    presorted: tuple[Tensor, Tensor] | None = None,
) -> tuple[float, ...]:
    """The reference greedy rule on precomputed ``[exits, samples]`` confidences.

    For exit ``k`` the samples that no earlier exit took are walked in descending confidence
    and the threshold is the confidence of the ``exit_counts[k]``-th one, whatever order ties
    were sorted in. Samples tied with it leave as well, so an exit can take more than its count.
    A count of 0, or one larger than the samples left, gives ``inf`` (nobody leaves), as in the
    reference. The last exit gets ``-inf``. NaN / ``-inf`` confidences (rows with NaN logits) are
    never counted toward a quota, so they cannot shift the other exits' shares.

    Args:
        confidence: ``[exits, samples]``, larger = more confident.
        exit_counts: Samples wanted at each exit but the last (extra entries are ignored).
        presorted: ``sort_confidence(confidence)``, to sort once for many calls (a sweep).

    Returns:
        One threshold per exit.

    Raises:
        ValueError: If ``confidence`` is not 2-D or a count is negative or missing.
    """
    if not isinstance(confidence, Tensor) or confidence.ndim != 2:
        raise ValueError("confidence must be a [exits, samples] tensor")
    counts = [int(c) for c in exit_counts]
    if len(counts) < confidence.shape[0] - 1 or any(c < 0 for c in counts):
        raise ValueError(
            f"exit_counts must be {confidence.shape[0] - 1}+ counts >= 0, got {counts}"
        )
    return _greedy(confidence, counts, presorted or _sort(confidence))


def sort_confidence(confidence: Tensor) -> tuple[Tensor, Tensor]:
    """Each exit's confidences in descending order and the samples they came from."""
    return _sort(confidence)


def _check_fractions(exit_fractions: Sequence[float], num_exits: int) -> list[float]:
    if isinstance(exit_fractions, str | bytes) or not isinstance(exit_fractions, Sequence):
        raise TypeError(f"exit_fractions must be a sequence of numbers, got {exit_fractions!r}")
    if any(not is_real(f) for f in exit_fractions):
        raise TypeError(f"exit_fractions must hold numbers, got {list(exit_fractions)!r}")
    fractions = [float(f) for f in exit_fractions]
    if len(fractions) != num_exits:
        raise ValueError(
            f"exit_fractions has {len(fractions)} entries but the logits have {num_exits} exits"
        )
    if any(not math.isfinite(f) or f < 0.0 for f in fractions):
        raise ValueError(f"exit_fractions must be finite and non-negative, got {fractions}")
    total = math.fsum(fractions)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"exit_fractions must sum to 1 (tolerance 1e-6), they sum to {total!r}")
    return fractions


def calibrate_shares(
    logits: LogitsInput,
    exit_fractions: Sequence[float],
    *,
    measure: str = "max_prob",
    temperatures: Sequence[float] | None = None,
) -> EarlyExitPolicy:
    """Thresholds that send a target share of the given samples out at each exit.

    The greedy rule of the RANet / MSDNet reference, vectorised: exit ``k``'s threshold is the
    ``floor(n * exit_fractions[k])``-th highest confidence among the samples no earlier exit
    took, with ``n`` all samples (see :func:`greedy_thresholds` for ties and edge cases).

    Args:
        logits: ``[exits, samples, classes]`` (or one tensor per exit), from held-out data.
        exit_fractions: Target share per exit; non-negative, summing to 1.
        measure: ``"max_prob"``, ``"entropy"`` or ``"margin"``.
        temperatures: Per-exit temperatures applied before the measure (and kept by the policy).

    Returns:
        The calibrated policy, recording the number of classes.

    Raises:
        TypeError: If ``exit_fractions`` is not a sequence of numbers.
        ValueError: On malformed logits or fractions, no samples, or an unknown measure.
    """
    check_measure(measure)
    stacked = stack_logits(logits)
    num_exits, num_samples, num_classes = stacked.shape
    require_samples(num_samples, "logits")
    fractions = _check_fractions(exit_fractions, num_exits)
    temps = check_temperatures(temperatures, num_exits)
    with torch.no_grad():
        confidence = exit_confidences(stacked, measure, temps)
        counts = [math.floor(num_samples * f) for f in fractions]
        thresholds = greedy_thresholds(confidence, counts)
    return EarlyExitPolicy(thresholds, measure, temperatures=temps, num_classes=num_classes)


def calibrate_for_cost(
    logits: LogitsInput,
    costs: Sequence[float],
    target_mean_cost: float,
    *,
    measure: str = "max_prob",
    temperatures: Sequence[float] | None = None,
    cost_convention: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> EarlyExitPolicy:
    """A policy whose mean cost per sample on ``logits`` stays within a budget.

    The search runs over the reference's geometric family: for a ratio ``p`` the policy is
    :func:`calibrate_shares` with :func:`geometric_exit_fractions` ``(p, exits)``. ``p`` is
    bisected in log space over ``[1e-4, 1e4]``; among all policies evaluated the one with the
    largest mean cost not above the target is returned. Everybody at exit 0 (mean cost
    ``costs[0]``) is always a candidate, so any target ``>= costs[0]`` is met on these samples;
    on other data the mean cost varies by sampling noise.

    Args:
        logits: ``[exits, samples, classes]`` (or one tensor per exit), from held-out data.
        costs: Cumulative cost of leaving at each exit (MACs, or seconds from
            :func:`adanet.measure_exit_latency`); non-negative and non-decreasing.
        target_mean_cost: Largest acceptable mean cost per sample, in the units of ``costs``.
        measure: ``"max_prob"``, ``"entropy"`` or ``"margin"``.
        temperatures: Per-exit temperatures applied before the measure.
        cost_convention: Recorded in the policy (e.g. ``"actual"``, ``"latency"``), if known.
        input_size: Input size the costs were measured for, recorded in the policy, if known.

    Returns:
        The chosen policy; everybody to the last exit if ``target_mean_cost >= costs[-1]``.

    Raises:
        ValueError: If ``target_mean_cost < costs[0]`` or is NaN, on malformed inputs, or no
            samples.
    """
    check_measure(measure)
    stacked = stack_logits(logits)
    num_exits, num_samples, num_classes = stacked.shape
    require_samples(num_samples, "logits")
    cost_values = check_costs(costs, num_exits)
    if not is_real(target_mean_cost):
        raise TypeError(f"target_mean_cost must be a number, got {target_mean_cost!r}")
    target = float(target_mean_cost)
    if math.isnan(target) or target < cost_values[0]:
        raise ValueError(
            f"target_mean_cost {target!r} is below costs[0] = {cost_values[0]!r}, the cost "
            "of leaving at the first exit, so no policy can meet it"
        )
    temps = check_temperatures(temperatures, num_exits)
    context = {
        "temperatures": temps,
        "num_classes": num_classes,
        "cost_convention": cost_convention,
        "input_size": normalise_input_size(input_size),
    }
    never = [math.inf] * (num_exits - 1)
    if target >= cost_values[-1]:
        return EarlyExitPolicy([*never, -math.inf], measure, **context)  # type: ignore[arg-type]
    with torch.no_grad():
        confidence = exit_confidences(stacked, measure, temps)
        thresholds = _bisect_for_cost(confidence, cost_values, target, _sort(confidence))
    return EarlyExitPolicy(thresholds, measure, **context)  # type: ignore[arg-type]


def _bisect_for_cost(
    confidence: Tensor,
    cost_values: list[float],
    target: float,
    presorted: tuple[Tensor, Tensor],
) -> tuple[float, ...]:
    num_exits, num_samples = confidence.shape
    cost_tensor = torch.tensor(cost_values, dtype=torch.float64)

    def evaluate(log_p: float) -> tuple[float, tuple[float, ...]]:
        fractions = geometric_exit_fractions(math.exp(log_p), num_exits)
        wanted = [math.floor(num_samples * f) for f in fractions]
        thresholds = _greedy(confidence, wanted, presorted)
        exits = EarlyExitPolicy(thresholds).exits_from_confidence(confidence).cpu()
        taken = torch.bincount(exits, minlength=num_exits).to(torch.float64)
        return float((taken * cost_tensor).sum()) / max(num_samples, 1), thresholds

    # Everybody at exit 0 meets any feasible target, so there is always an answer.
    best_cost, best = cost_values[0], (-math.inf,) + (math.inf,) * (num_exits - 2) + (-math.inf,)
    lo, hi = _LOG_P_MIN, _LOG_P_MAX
    (lo_cost, lo_t), (hi_cost, hi_t) = evaluate(lo), evaluate(hi)
    candidates = [(lo_cost, lo_t), (hi_cost, hi_t)]
    if lo_cost <= target < hi_cost:
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            mid_cost, mid_t = evaluate(mid)
            candidates.append((mid_cost, mid_t))
            lo, hi = (mid, hi) if mid_cost <= target else (lo, mid)
            # A narrower bracket in log p cannot move a share by one sample.
            if mid_cost == target or hi - lo < 1e-12:
                break
    for cost, thresholds in candidates:
        if best_cost < cost <= target:
            best_cost, best = cost, thresholds
    return best
