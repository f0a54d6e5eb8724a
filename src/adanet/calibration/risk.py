"""Thresholds for a target accuracy drop, with or without a statistical guarantee.

The family searched has one parameter: a shared threshold ``lam`` on the confidence at every
exit but the last (a sample leaves at its first exit whose confidence reaches ``lam``), on a
fixed grid of candidates chosen before seeing any data, as in "Fast yet Safe: Early-Exiting
with Risk Control" (Jazbec et al., 2024). Lowering ``lam`` lets more samples leave early, so
the cost never rises and the drop usually does.

The loss of a sample that leaves at exit ``k`` is measured against the last exit:

* ``against="labels"``: 1 if the last exit is right and exit ``k`` is wrong, else 0. Its
  mean bounds the accuracy drop ``accuracy(last exit) - accuracy(policy)`` from above.
* ``against="last_exit"``: 1 if exit ``k`` predicts another class than the last exit. It
  needs no labels and bounds the drop from above as well.

Methods (``n`` calibration samples; "exchangeable" means the calibration samples and a new
test sample are exchangeable, e.g. i.i.d. from one distribution):

* ``"ltt"``, Learn then Test: each candidate, from the most conservative down, is tested for
  ``H0: risk > eps`` with the Hoeffding-Bentkus p-value; testing stops at the first candidate
  not rejected at level ``delta`` (fixed-sequence testing controls the family-wise error).
  Guarantee, for i.i.d. data: with probability at least ``1 - delta`` over the draw of the
  calibration set, the expected loss of the returned policy on a new sample is at most
  ``eps``.
* ``"crc"``, conformal risk control (Angelopoulos et al., 2022), on the loss made monotone in
  ``lam`` (each sample's loss replaced by the largest loss at any larger threshold, which only
  raises it): the smallest ``lam`` with ``(n * mean loss + 1) / (n + 1) <= eps``. Guarantee,
  under exchangeability: the expected loss on a new sample, over the calibration draw and the
  sample, is at most ``eps``. This holds in expectation; ``delta`` plays no part.
* ``"naive"``: the cheapest candidate whose empirical drop on the calibration set (the signed
  accuracy difference with labels) is at most ``eps``. No guarantee on new data.

The most conservative candidate (``inf``: everybody at the last exit) has loss 0 and is
returned when nothing cheaper qualifies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor

from adanet._validation import check_costs, check_targets, require_choice, require_fraction
from adanet.policies.confidence import check_measure, exit_confidences
from adanet.policies.fields import check_temperatures, normalise_input_size
from adanet.policies.protocol import LogitsInput, stack_logits
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "AGAINST",
    "METHODS",
    "calibrate_risk",
    "default_candidates",
    "hoeffding_bentkus_pvalue",
]

#: Calibration methods of :func:`calibrate_risk`.
METHODS: Final[tuple[str, ...]] = ("ltt", "crc", "naive")
#: What the drop is measured against: the labels, or the last exit's predictions.
AGAINST: Final[tuple[str, ...]] = ("labels", "last_exit")


def default_candidates() -> list[float]:
    """The fixed threshold grid: ``0 .. 1`` in steps of 1/2000, finer towards 1, and ``inf``."""
    return _default_grid().tolist()


@functools.lru_cache(maxsize=1)
def _default_grid() -> Tensor:
    coarse = [k / 2000 for k in range(2001)]
    fine = [1.0 - 10.0 ** (-(3.3 + 0.05 * k)) for k in range(75)]
    return torch.tensor([*sorted(set(coarse + fine)), math.inf], dtype=torch.float64)


def _grid(candidates: Sequence[float] | None) -> Tensor:
    if candidates is None:
        return _default_grid()
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be a sequence of thresholds, got {candidates!r}")
    values = sorted({float(c) for c in candidates if not math.isnan(float(c))} | {math.inf})
    return torch.tensor(values, dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def _binomial_cdf(n: int, alpha: float) -> Tensor:
    """``P(Bin(n, alpha) <= k)`` for ``k = 0 .. n``, float64."""
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - torch.lgamma(k + 1)
        - torch.lgamma(n - k + 1)
        + k * math.log(alpha)
        + (n - k) * math.log1p(-alpha)
    )
    return torch.cumsum(log_pmf.exp(), dim=0).clamp(max=1.0)


def hoeffding_bentkus_pvalue(loss_sum: Tensor, n: int, alpha: float) -> Tensor:
    """Hoeffding-Bentkus p-value of ``H0: risk > alpha`` for losses in ``[0, 1]``.

    ``min(exp(-n h(min(r, alpha), alpha)), e * P(Bin(n, alpha) <= ceil(n r)))`` with ``r`` the
    empirical risk and ``h(a, b) = a log(a/b) + (1-a) log((1-a)/(1-b))`` (Bates et al., 2021).

    Args:
        loss_sum: Sum of the ``n`` losses, any shape.
        n: Number of samples; at least 1.
        alpha: The risk level tested, in ``(0, 1)``.

    Returns:
        The p-values, same shape as ``loss_sum``, float64.
    """
    total = loss_sum.to(torch.float64)
    risk = (total / n).clamp(0.0, alpha)
    with torch.no_grad():
        a = risk
        plogp = torch.where(a > 0, a * torch.log(a / alpha), torch.zeros_like(a))
        h = plogp + (1 - a) * torch.log((1 - a) / (1 - alpha))
        hoeffding = torch.exp(-n * h)
        index = torch.ceil(total - 1e-9).clamp(0, n).long()
        bentkus = math.e * _binomial_cdf(n, alpha)[index]
    return torch.minimum(hoeffding, bentkus).clamp(max=1.0)


def _interval_sums(bounds: Tensor, values: Tensor, num_candidates: int) -> Tensor:
    """``sum_i values[k, i]`` over the samples whose exit is ``k`` at each candidate.

    ``bounds[k, i]`` is where sample ``i``'s exit-``k`` interval of candidates ends (and exit
    ``k+1``'s begins); a difference array adds each value over its interval.
    """
    starts = torch.cat([torch.zeros_like(bounds[:1]), bounds])
    ends = torch.cat([bounds, torch.full_like(bounds[:1], num_candidates)])
    diff = torch.zeros(num_candidates + 1, dtype=torch.float64, device=values.device)
    diff.scatter_add_(0, starts.flatten(), values.flatten())
    diff.scatter_add_(0, ends.flatten(), -values.flatten())
    return diff.cumsum(0)[:num_candidates]


def _exit_losses(stacked: Tensor, targets: Tensor | None, against: str, signed: bool) -> Tensor:
    """``[exits, N]`` loss of each sample if it left at each exit (0 at the last exit)."""
    valid = ~stacked.isnan().any(dim=2)
    pred = stacked.argmax(dim=2)
    if against == "last_exit":
        return ((pred != pred[-1]) | ~valid).to(torch.float64)
    assert targets is not None
    right = ((pred == targets.to(pred.device)) & valid).to(torch.float64)
    drop = right[-1] - right
    return drop if signed else drop.clamp(min=0.0)


def _choose(
    method: str, sums: Tensor, monotone_sums: Tensor, n: int, eps: float, delta: float
) -> Tensor:
    """Bool mask of the candidates that meet ``method``'s criterion (the last one always)."""
    ok = torch.zeros_like(sums, dtype=torch.bool)
    ok[-1] = True
    if method == "naive":
        return ok | (sums / n <= eps + 1e-12)
    if method == "crc":
        return ok | ((monotone_sums + 1.0) / (n + 1) <= eps + 1e-12)
    rejected = hoeffding_bentkus_pvalue(sums, n, eps) <= delta
    # Fixed sequence from the most conservative candidate down: stop at the first failure.
    tested = rejected[:-1].flip(0).to(torch.int64).cumprod(0).flip(0).to(torch.bool)
    return torch.cat([tested, ok[-1:]])


def _check_args(method: str, against: str, eps: object, delta: object) -> tuple[float, float]:
    require_choice("method", method, METHODS)
    require_choice("against", against, AGAINST)
    for name, value in (("max_accuracy_drop", eps), ("delta", delta)):
        require_fraction(name, value, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    return float(eps), float(delta)  # type: ignore[arg-type]


def calibrate_risk(
    logits: LogitsInput,
    targets: Tensor | None,
    *,
    max_accuracy_drop: float,
    delta: float = 0.1,
    method: str = "ltt",
    costs: Sequence[float] | None = None,
    against: str = "labels",
    measure: str = "max_prob",
    temperatures: Sequence[float] | None = None,
    candidates: Sequence[float] | None = None,
    cost_convention: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> EarlyExitPolicy:
    """The cheapest shared-threshold policy that meets ``method``'s accuracy-drop guarantee.

    See the module docstring for the family, the losses and exactly what each method
    guarantees. The guarantees hold for the loss against the last exit, which is at least the
    accuracy drop; they concern new data drawn like the calibration data, nothing else.

    Args:
        logits: ``[exits, n, classes]`` logits (or one tensor per exit) of calibration
            samples not used for training.
        targets: ``[n]`` integer class indices; may be ``None`` with
            ``against="last_exit"``.
        max_accuracy_drop: ``eps`` in ``(0, 1)``, e.g. 0.02 for two points.
        delta: ``ltt``'s allowed probability of failure in ``(0, 1)``; unused otherwise.
        method: ``"ltt"``, ``"crc"`` or ``"naive"``.
        costs: Cumulative cost per exit used to pick the cheapest qualifying candidate (ties go
            to the larger threshold); the exit index when omitted.
        against: ``"labels"`` or ``"last_exit"`` (see the module notes).
        measure: Confidence measure: ``"max_prob"``, ``"entropy"`` or ``"margin"``.
        temperatures: Per-exit temperatures applied before the measure (kept by the policy).
        candidates: Threshold grid, fixed before seeing the data; :func:`default_candidates`.
        cost_convention: Recorded in the policy, if known.
        input_size: Recorded in the policy, if known.

    Returns:
        An :class:`adanet.EarlyExitPolicy` with one shared threshold at every exit but the last.

    Raises:
        TypeError, ValueError: On bad arguments, logits, targets or costs.
    """
    eps, risk_delta = _check_args(method, against, max_accuracy_drop, delta)
    check_measure(measure)
    stacked = stack_logits(logits)
    num_exits, n, num_classes = stacked.shape
    if n == 0:
        raise ValueError("logits hold no samples")
    labels = None
    if against == "labels" or targets is not None:
        labels = check_targets(targets, n, num_classes)
    cost_values = check_costs(list(range(num_exits)) if costs is None else costs, num_exits)
    temps = check_temperatures(temperatures, num_exits)
    grid = _grid(candidates)
    with torch.no_grad():
        conf = exit_confidences(stacked, measure, temps).to(torch.float64).cpu()
        reach = conf[:-1].cummax(dim=0).values if num_exits > 1 else conf[:0]
        bounds = torch.searchsorted(grid, reach.contiguous(), right=True)
        losses = _exit_losses(stacked, labels, against, signed=method == "naive").cpu()
        visited = torch.cat([bounds, torch.full_like(bounds[:1], len(grid))]) > torch.cat(
            [torch.zeros_like(bounds[:1]), bounds]
        )
        masked = torch.where(visited, losses, torch.full_like(losses, -1.0))
        monotone = masked.flip(0).cummax(dim=0).values.flip(0).clamp(min=0.0)
        sums = _interval_sums(bounds, losses, len(grid))
        mono_sums = _interval_sums(bounds, monotone, len(grid))
        cost_curve = _interval_sums(
            bounds,
            torch.tensor(cost_values, dtype=torch.float64).view(-1, 1).expand(-1, n),
            len(grid),
        )
        ok = _choose(method, sums, mono_sums, n, eps, risk_delta)
        # Cheapest qualifying candidate; among equal costs the largest threshold (safest).
        score = torch.where(ok, cost_curve, torch.full_like(cost_curve, math.inf))
        best = int(len(grid) - 1 - torch.argmin(score.flip(0)))
    lam = float(grid[best])
    return EarlyExitPolicy(
        [lam] * (num_exits - 1) + [-math.inf],
        measure,
        temperatures=temps,
        num_classes=num_classes,
        cost_convention=cost_convention,
        input_size=normalise_input_size(input_size),
    )
