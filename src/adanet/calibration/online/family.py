"""The calibrated tables an :class:`~adanet.calibration.OnlineController` steers along.

* :class:`ThresholdFamily`: a one-parameter family of per-exit thresholds, the reference's
  geometric shares (:func:`~adanet.calibration.geometric_exit_fractions`) over a grid of
  ratios ``p``, each calibrated with the greedy rule on held-out logits. For every member it
  records the mean cost and the disagreement with the last exit it had on those logits; both
  are made monotone along the family (cost up, disagreement down), so a wanted cost or
  disagreement picks a position, and thresholds between two members are interpolated.
* :class:`DisagreementMap`: per exit, the chance that a sample leaving there with a given
  confidence predicts another class than the last exit would, fitted on held-out logits by
  isotonic regression over confidence bins. It lets the controller estimate, for every sample
  and without labels, what the last exit would have said.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import torch
from torch import Tensor

from adanet.calibration.shares import geometric_exit_fractions, greedy_thresholds, sort_confidence
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["CEILING", "DisagreementMap", "ThresholdFamily", "disagreements"]

#: A threshold above every confidence measure's largest value (1): nobody leaves at that exit.
#: Finite, so that thresholds between two members of the family can be interpolated.
CEILING: Final[float] = 1.0 + 2.0**-20

# Ratios p of the geometric family, log-spaced: at the ends all but about 1 in 1,000 samples
# are meant to leave at the first and at the last exit respectively.
_LOG_P_RANGE: Final[tuple[float, float]] = (math.log(1e-3), math.log(1e3))
_BINS: Final[int] = 16


def disagreements(predictions: Tensor, valid: Tensor) -> Tensor:
    """``[exits, N]`` float64: 1 where an exit predicts another class than the last exit.

    Rows that are not ``valid`` (NaN logits) count as agreeing: they never leave early.
    """
    return ((predictions != predictions[-1]) & valid).to(torch.float64)


@dataclass(frozen=True)
class ThresholdFamily:
    """Per-exit thresholds along one parameter, with their calibration cost and disagreement.

    Attributes:
        thresholds: One tuple of ``exits - 1`` thresholds per member, in ``[0, CEILING]``.
        cost: Mean cost per sample of each member on the calibration logits, non-decreasing.
        drop: Share of calibration samples whose exit disagrees with the last exit, for each
            member, non-increasing.
    """

    thresholds: tuple[tuple[float, ...], ...]
    cost: tuple[float, ...]
    drop: tuple[float, ...]

    @classmethod
    def calibrate(
        cls, confidence: Tensor, disagree: Tensor, costs: Sequence[float], size: int = 121
    ) -> ThresholdFamily:
        """The geometric family on ``[exits, N]`` confidences.

        Args:
            confidence: ``[exits, N]`` calibration confidences (``-inf`` for NaN rows).
            disagree: ``[exits, N]`` from :func:`disagreements`.
            costs: Cumulative cost of each exit.
            size: Ratios ``p`` of the family (it also holds its two ends: everybody at the
                first exit, everybody at the last); at least 2.
        """
        num_exits, n = confidence.shape
        presorted = sort_confidence(confidence)
        cost_table = torch.tensor(costs, dtype=torch.float64)
        low, high = _LOG_P_RANGE
        members: list[tuple[float, ...]] = []
        mean_cost: list[float] = []
        drop: list[float] = []
        rows = torch.arange(n)

        def add(thresholds: tuple[float, ...]) -> None:
            policy = EarlyExitPolicy([*thresholds, -math.inf])
            exits = policy.exits_from_confidence(confidence).cpu()
            members.append(thresholds)
            mean_cost.append(float(cost_table[exits].mean()))
            drop.append(float(disagree.cpu()[exits, rows].mean()))

        # The ends are everybody at the first exit (any confidence, NaN aside) and everybody at
        # the last, so the command can reach any cost between costs[0] and costs[-1] even on
        # images less confident than every calibration image.
        add((0.0,) + (CEILING,) * (num_exits - 2))
        for j in range(size):
            p = math.exp(low + (high - low) * j / (size - 1))
            counts = [math.floor(n * f) for f in geometric_exit_fractions(p, num_exits)]
            raw = greedy_thresholds(confidence, counts, presorted=presorted)[:-1]
            add(tuple(min(max(t, 0.0), CEILING) for t in raw))
        add((CEILING,) * (num_exits - 1))
        size += 2
        # Sampling noise and ties can make neighbours out of order by a hair; the axes the
        # controller inverts must be monotone.
        for j in range(1, size):
            mean_cost[j] = max(mean_cost[j], mean_cost[j - 1])
            drop[j] = min(drop[j], drop[j - 1])
        return cls(tuple(members), tuple(mean_cost), tuple(drop))

    def axis(self, name: str) -> tuple[float, ...]:
        """The ``"cost"`` or ``"drop"`` axis, as non-decreasing values (the drop negated)."""
        if name == "cost":
            return self.cost
        negated: tuple[float, ...] | None = self.__dict__.get("_negated_drop")
        if negated is None:
            negated = tuple(-d for d in self.drop)
            object.__setattr__(self, "_negated_drop", negated)
        return negated

    def bounds(self, name: str) -> tuple[float, float]:
        """Smallest and largest value the ``"cost"`` or ``"drop"`` axis reaches."""
        values = self.cost if name == "cost" else self.drop
        return min(values), max(values)

    def at(self, name: str, value: float) -> tuple[float, ...]:
        """Thresholds (the last exit's ``-inf`` included) of the member where the ``"cost"``
        or ``"drop"`` axis has ``value``, interpolated between members; clamped to the ends."""
        axis = self.axis(name)
        target = value if name == "cost" else -value
        j = _bracket(axis, target)
        gap = axis[j + 1] - axis[j]
        weight = 0.0 if gap <= 0.0 else min(max((target - axis[j]) / gap, 0.0), 1.0)
        lower, upper = self.thresholds[j], self.thresholds[j + 1]
        mixed = tuple((1.0 - weight) * a + weight * b for a, b in zip(lower, upper, strict=True))
        return (*mixed, -math.inf)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (every value finite)."""
        return {
            "thresholds": [list(t) for t in self.thresholds],
            "cost": list(self.cost),
            "drop": list(self.drop),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], num_exits: int) -> ThresholdFamily:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: A malformed table (lengths, non-finite or unordered values).
        """
        thresholds = tuple(tuple(float(t) for t in row) for row in d["thresholds"])
        cost = tuple(float(c) for c in d["cost"])
        drop = tuple(float(v) for v in d["drop"])
        size = len(thresholds)
        if size < 2 or len(cost) != size or len(drop) != size:
            raise ValueError("a threshold family needs 2+ members with one cost and drop each")
        if any(len(row) != num_exits - 1 for row in thresholds):
            raise ValueError(f"every member needs {num_exits - 1} thresholds")
        values = [*cost, *drop, *(t for row in thresholds for t in row)]
        if any(not math.isfinite(v) for v in values):
            raise ValueError("a threshold family holds only finite values")
        ordered = all(a <= b for a, b in itertools.pairwise(cost)) and all(
            a >= b for a, b in itertools.pairwise(drop)
        )
        if not ordered:
            raise ValueError("family costs must not decrease and drops must not increase")
        return cls(thresholds, cost, drop)


def _bracket(axis: Sequence[float], value: float) -> int:
    """The ``j`` with ``axis[j] <= value <= axis[j + 1]`` (``0`` or ``len - 2`` outside)."""
    lo, hi = 0, len(axis) - 1
    if value <= axis[0]:
        return 0
    if value >= axis[-1]:
        return len(axis) - 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if axis[mid] <= value:
            lo = mid
        else:
            hi = mid
    return lo


def _decreasing_fit(values: list[float], weights: list[float]) -> list[float]:
    """Weighted least-squares non-increasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights, strict=True):
        blocks.append([value, weight, 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean, w, c = blocks.pop()
            prev = blocks[-1]
            total = prev[1] + w
            prev[0] = (prev[0] * prev[1] + mean * w) / total if total > 0 else prev[0]
            prev[1], prev[2] = total, prev[2] + c
    fitted: list[float] = []
    for mean, _, count in blocks:
        fitted.extend([mean] * int(count))
    return fitted


@dataclass(frozen=True)
class DisagreementMap:
    """Per exit but the last, P(disagree with the last exit | confidence), a step function.

    Attributes:
        edges: Per exit, the ascending inner bin edges of the confidence.
        values: Per exit, one non-increasing probability per bin (``len(edges) + 1``).
    """

    edges: tuple[tuple[float, ...], ...]
    values: tuple[tuple[float, ...], ...]

    @classmethod
    def fit(cls, confidence: Tensor, disagree: Tensor, bins: int = _BINS) -> DisagreementMap:
        """Fits each exit's map on ``[exits, N]`` calibration confidences and disagreements.

        Bins hold equal numbers of samples; each bin's rate is shrunk toward the exit's overall
        rate by one pseudo-sample, then made non-increasing in confidence.
        """
        edges: list[tuple[float, ...]] = []
        values: list[tuple[float, ...]] = []
        for k in range(confidence.shape[0] - 1):
            conf = confidence[k].to(torch.float64).cpu()
            dis = disagree[k].cpu()
            valid = torch.isfinite(conf)
            conf, dis = conf[valid], dis[valid]
            if conf.numel() == 0:
                edges.append(())
                values.append((1.0,))
                continue
            levels = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)[1:-1]
            inner = sorted(set(torch.quantile(conf, levels).tolist()))
            bucket = torch.bucketize(conf, torch.tensor(inner, dtype=torch.float64), right=True)
            count = torch.bincount(bucket, minlength=len(inner) + 1).to(torch.float64)
            hits = torch.bincount(bucket, weights=dis, minlength=len(inner) + 1)
            overall = float(dis.mean())
            rates = ((hits + overall) / (count + 1.0)).tolist()
            edges.append(tuple(inner))
            values.append(tuple(_decreasing_fit(rates, (count + 1.0).tolist())))
        return cls(tuple(edges), tuple(values))

    def __post_init__(self) -> None:
        # One padded table for all exits (the last exit a row of zeros), so a batch is looked up
        # with one search whatever exits its images left at: observe() runs after every batch.
        width = max((len(e) for e in self.edges), default=0)
        edges = torch.full((len(self.edges) + 1, max(width, 1)), math.inf, dtype=torch.float64)
        values = torch.zeros(len(self.edges) + 1, max(width, 1) + 1, dtype=torch.float64)
        for k, (inner, rates) in enumerate(zip(self.edges, self.values, strict=True)):
            edges[k, : len(inner)] = torch.tensor(inner, dtype=torch.float64)
            values[k, : len(rates)] = torch.tensor(rates, dtype=torch.float64)
            values[k, len(rates) :] = rates[-1]
        object.__setattr__(self, "_edges", edges)
        object.__setattr__(self, "_table", values)

    def __call__(self, confidence: Tensor, exit_index: Tensor) -> Tensor:
        """``[n]`` float64 chance of disagreeing; 0 at the last exit (it is the reference)."""
        exits = exit_index.cpu().long()
        conf = confidence.to(torch.float64).cpu().unsqueeze(1)
        edges: Tensor = self._edges  # type: ignore[attr-defined]
        table: Tensor = self._table  # type: ignore[attr-defined]
        bucket = torch.searchsorted(edges[exits], conf, right=True).squeeze(1)
        return table[exits, bucket]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"edges": [list(e) for e in self.edges], "values": [list(v) for v in self.values]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], num_exits: int) -> DisagreementMap:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: Wrong lengths or values outside ``[0, 1]``.
        """
        edges = tuple(tuple(float(e) for e in row) for row in d["edges"])
        values = tuple(tuple(float(v) for v in row) for row in d["values"])
        if len(edges) != num_exits - 1 or len(values) != num_exits - 1:
            raise ValueError(f"a disagreement map needs {num_exits - 1} exits")
        for inner, rates in zip(edges, values, strict=True):
            if len(rates) != len(inner) + 1 or any(not 0.0 <= v <= 1.0 for v in rates):
                raise ValueError("each exit needs one rate in [0, 1] per bin")
            if any(not math.isfinite(e) for e in inner) or list(inner) != sorted(inner):
                raise ValueError("bin edges must be finite and ascending")
        return cls(edges, values)
