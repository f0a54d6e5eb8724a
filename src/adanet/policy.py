"""Early-exit policies: when should a sample stop at an intermediate classifier?

An :class:`EarlyExitPolicy` holds one threshold per exit on a confidence measure computed from
that exit's logits. A sample leaves at the first exit whose confidence reaches the exit's
threshold; the last exit takes every sample that is still there.

The same decisions are available in two forms that agree exactly:

* :meth:`EarlyExitPolicy.simulate` takes the logits of every exit for every sample (the
  "simulated" early exit of the RANet / MSDNet reference code) and returns each sample's exit.
* :meth:`EarlyExitPolicy.initial_state` / :meth:`EarlyExitPolicy.step` decide exit by exit for
  a real early-exit loop that only runs the network on the samples that are still there.

:meth:`EarlyExitPolicy.calibrate` reproduces the greedy threshold search of the reference code
(``Tester.dynamic_eval_find_threshold``), vectorised, and
:meth:`EarlyExitPolicy.calibrate_for_cost` searches that family for a mean-cost budget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import torch
from torch import Tensor

__all__ = ["MEASURES", "EarlyExitPolicy", "LogitsInput", "geometric_exit_fractions"]

#: Confidence measures understood by :class:`EarlyExitPolicy`.
MEASURES: Final[tuple[str, ...]] = ("max_prob", "entropy", "margin", "patience")

#: Per-exit logits: a ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor
#: per exit.
LogitsInput = Tensor | Sequence[Tensor]

# Measures that are a function of one exit's logits alone (patience also needs earlier exits).
_STATELESS_MEASURES: Final[tuple[str, ...]] = ("max_prob", "entropy", "margin")

# Bisection range for the geometric family's p in calibrate_for_cost: at these ends almost all
# samples (all but about 1 in 10^4) are assigned to the first and the last exit respectively.
_LOG_P_MIN: Final[float] = math.log(1e-4)
_LOG_P_MAX: Final[float] = math.log(1e4)
_BISECTION_STEPS: Final[int] = 40


def geometric_exit_fractions(p: float, num_exits: int) -> list[float]:
    """Share of samples meant to leave at each exit in the reference budgeted protocol.

    The share at exit ``k`` (``k = 1 .. num_exits``) is proportional to ``p ** k``, normalised to
    sum to one: ``p < 1`` favours early exits, ``p > 1`` late ones, ``p == 1`` is uniform. The
    reference code sweeps ``p = 1/20, 2/20, ..., 39/20``. It computes the shares in float32; they
    are computed here in float64 (stable for any ``p`` and number of exits), which can move
    ``floor(n * share)`` by one sample. :func:`adanet.budgeted.budgeted_sweep` therefore repeats
    the reference's float32 arithmetic to match its numbers exactly.

    Args:
        p: Ratio between the shares of consecutive exits; must be positive.
        num_exits: Number of exits; at least 1.

    Returns:
        ``num_exits`` non-negative floats that sum to one.

    Raises:
        ValueError: If ``p <= 0`` (or not finite) or ``num_exits < 1``.
    """
    if isinstance(num_exits, bool) or not isinstance(num_exits, int) or num_exits < 1:
        raise ValueError(f"num_exits must be an integer >= 1, got {num_exits!r}")
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


def _check_measure(measure: str) -> str:
    if measure not in MEASURES:
        allowed = ", ".join(repr(m) for m in MEASURES)
        raise ValueError(f"unknown confidence measure {measure!r}; allowed values: {allowed}")
    return measure


def _check_calibration_measure(measure: str) -> str:
    _check_measure(measure)
    if measure not in _STATELESS_MEASURES:
        # A streak length takes a handful of integer values, so quantile thresholds on it are
        # degenerate (at exit 0 every streak is 1 and everybody would leave).
        allowed = ", ".join(repr(m) for m in _STATELESS_MEASURES)
        raise ValueError(
            f"measure {measure!r} cannot be calibrated; allowed values: {allowed} "
            "(build patience policies with EarlyExitPolicy.with_patience(k, num_exits))"
        )
    return measure


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision logits would make confidences tie far more often and lose the ordering that
    # calibration relies on, so compute in at least float32.
    if dtype.is_floating_point and torch.finfo(dtype).bits >= 32:
        return dtype
    return torch.float32


def _stack_logits(logits: LogitsInput) -> Tensor:
    """Returns the logits as one ``[exits, samples, classes]`` tensor, validating the shape."""
    if isinstance(logits, Tensor):
        if logits.ndim != 3:
            raise ValueError(
                "logits must have shape [exits, samples, classes] (3 dimensions), got a tensor "
                f"with {logits.ndim} dimension(s) and shape {tuple(logits.shape)}"
            )
        stacked = logits
    else:
        parts = list(logits)
        if not parts:
            raise ValueError("logits must contain at least one exit, got an empty sequence")
        for k, part in enumerate(parts):
            if not isinstance(part, Tensor) or part.ndim != 2:
                shape = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(
                    f"each exit's logits must be a [samples, classes] tensor; exit {k} is {shape}"
                )
            if part.shape != parts[0].shape:
                raise ValueError(
                    f"all exits must have the same [samples, classes] shape; exit 0 has "
                    f"{tuple(parts[0].shape)} but exit {k} has {tuple(part.shape)}"
                )
        stacked = torch.stack(parts)
    if stacked.shape[2] < 1:
        raise ValueError("logits must have at least one class")
    return stacked


def _exit_confidence(logits: Tensor, measure: str) -> Tensor:
    """Confidence for each sample; ``logits`` is ``[..., classes]``, the result ``[...]``.

    Every measure is oriented so that larger means more confident, which keeps the exit rule
    ``confidence >= threshold`` the same for all of them.
    """
    x = logits.to(_work_dtype(logits.dtype))
    num_classes = x.shape[-1]
    if measure == "max_prob":
        return torch.softmax(x, dim=-1).amax(dim=-1)
    if measure == "margin":
        probs = torch.softmax(x, dim=-1)
        if num_classes == 1:
            return probs[..., 0]
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if measure == "entropy":
        if num_classes == 1:
            return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        log_probs = torch.log_softmax(x, dim=-1)
        probs = log_probs.exp()
        # 0 * log(0) is 0 by convention; a -inf logit would otherwise turn the sum into NaN.
        plogp = torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))
        entropy = -plogp.sum(dim=-1)
        return 1.0 - entropy / math.log(num_classes)
    raise AssertionError(f"measure {measure!r} has no per-exit confidence")  # pragma: no cover


def _patience_update(logits: Tensor, prev_pred: Tensor, streak: Tensor) -> tuple[Tensor, Tensor]:
    """Advances the patience state by one exit; returns the new prediction and streak length."""
    pred = logits.argmax(dim=-1)
    streak = torch.where(pred == prev_pred, streak + 1, torch.ones_like(streak))
    return pred, streak


def _all_confidences(stacked: Tensor, measure: str) -> Tensor:
    """Confidence at every exit, ``[exits, samples]``, exactly as :meth:`step` computes it."""
    num_exits, num_samples = stacked.shape[0], stacked.shape[1]
    if measure == "patience":
        prev = torch.full((num_samples,), -1, dtype=torch.long, device=stacked.device)
        streak = torch.zeros(num_samples, dtype=torch.long, device=stacked.device)
        rows = []
        for k in range(num_exits):
            prev, streak = _patience_update(stacked[k], prev, streak)
            rows.append(streak)
        return torch.stack(rows)
    # One call over the whole stack rather than one per exit: every operation involved is
    # row-wise, so the values are bit-identical to step()'s per-exit ones, and a few large
    # kernels stay fast on a busy machine where many small multi-threaded ones stall.
    return _exit_confidence(stacked, measure)


def _check_fractions(exit_fractions: Sequence[float], num_exits: int) -> list[float]:
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


def _check_costs(costs: Sequence[float], num_exits: int) -> list[float]:
    values = [float(c) for c in costs]
    if len(values) != num_exits:
        raise ValueError(f"costs has {len(values)} entries but the logits have {num_exits} exits")
    if any(not math.isfinite(c) or c < 0.0 for c in values):
        raise ValueError(f"costs must be finite and non-negative, got {values}")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(
            f"costs must be cumulative (non-decreasing from one exit to the next), got {values}"
        )
    return values


def _sort_confidence(confidence: Tensor) -> tuple[Tensor, Tensor]:
    """Confidences of each exit in descending order, and the sample each came from."""
    result = confidence.sort(dim=1, descending=True)
    return result.values, result.indices


def _greedy_thresholds(
    confidence: Tensor,
    exit_counts: Sequence[int],
    presorted: tuple[Tensor, Tensor] | None = None,
) -> tuple[float, ...]:
    """The reference greedy rule on precomputed confidences ``[exits, samples]``.

    ``exit_counts[k]`` is the reference's ``out_n = floor(n * share_k)``, with ``n`` all samples.
    For exit ``k`` the reference walks the samples in descending confidence, counting only those
    that no earlier exit took, and sets the threshold to the confidence of the ``out_n``-th one:
    the ``out_n``-th largest remaining confidence, whatever order ties were sorted in. When
    ``out_n`` is 0 or exceeds the remaining samples it never assigns a threshold and keeps 1e8,
    i.e. nobody leaves; +inf here. Samples tied with the threshold all leave, so an exit can take
    more than its share. The last exit takes everybody left (-1e8 there, -inf here).

    The walk is vectorised: a running count of remaining samples along each exit's sort order
    finds the ``out_n``-th one. ``presorted`` (from :func:`_sort_confidence`) lets a sweep over
    many shares sort once.
    """
    num_exits, num_samples = confidence.shape[0], confidence.shape[1]
    sorted_values, sorted_index = presorted or _sort_confidence(confidence)
    remaining = torch.ones(num_samples, dtype=torch.bool, device=confidence.device)
    thresholds: list[float] = []
    for k in range(num_exits - 1):
        out_n = exit_counts[k]
        threshold = math.inf
        if out_n >= 1:
            # seen[i]: remaining samples among the i+1 most confident at exit k.
            seen = remaining[sorted_index[k]].cumsum(0)
            position = int(torch.searchsorted(seen, out_n))
            if position < num_samples:
                threshold = float(sorted_values[k, position])
                remaining &= ~(confidence[k] >= threshold)
        thresholds.append(threshold)
    thresholds.append(-math.inf)
    return tuple(thresholds)


def _encode_threshold(value: float) -> float | str:
    # JSON has no infinities; strings keep the file standard-conforming and readable.
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    return value


def _decode_threshold(value: Any) -> float:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
        raise ValueError(f"cannot decode threshold {value!r}; expected a number, 'inf' or '-inf'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"cannot decode threshold {value!r}; expected a number, 'inf' or '-inf'")
    return float(value)


class EarlyExitPolicy:
    """Per-exit thresholds on a confidence measure.

    A sample leaves at the first exit ``k`` whose confidence is ``>= thresholds[k]``; the last
    exit takes every sample still there whatever its threshold. A threshold of ``inf`` means
    nobody leaves at that exit, ``-inf`` that everybody still there does.

    Confidence measures (larger always means more confident):

    * ``"max_prob"``: the largest softmax probability (the RANet / MSDNet reference).
    * ``"entropy"``: ``1 - H(p) / log(C)``, the softmax entropy normalised to ``[0, 1]`` and
      flipped; 1 for a one-hot prediction, 0 for a uniform one.
    * ``"margin"``: top-1 minus top-2 softmax probability.
    * ``"patience"``: how many consecutive exits, ending at this one, predicted the same class.
      :meth:`patience` builds the usual rule "leave once ``k`` exits in a row agree".

    Policies are immutable, compare by value and round-trip through :meth:`to_dict`.

    Args:
        thresholds: One threshold per exit; NaN is rejected.
        measure: One of :data:`MEASURES`.

    Raises:
        ValueError: If ``thresholds`` is empty or contains NaN, or ``measure`` is unknown.
    """

    __slots__ = ("_measure", "_patience", "_thresholds")

    def __init__(self, thresholds: Sequence[float], measure: str = "max_prob") -> None:
        self._measure = _check_measure(measure)
        try:
            values = tuple(float(t) for t in thresholds)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"thresholds must be a sequence of numbers, got {thresholds!r}"
            ) from exc
        if not values:
            raise ValueError("thresholds must have one entry per exit; got none")
        nan_at = [k for k, t in enumerate(values) if math.isnan(t)]
        if nan_at:
            raise ValueError(f"thresholds must not be NaN; exits {nan_at} are NaN")
        self._thresholds = values
        self._patience = self._infer_patience()

    def _infer_patience(self) -> int | None:
        if self._measure != "patience":
            return None
        # The last exit's threshold is never consulted, so only the others define k.
        deciding = self._thresholds[:-1] or self._thresholds
        first = deciding[0]
        if all(t == first for t in deciding) and math.isfinite(first) and first == int(first):
            return int(first)
        return None

    # ------------------------------------------------------------------ construction

    @classmethod
    def with_patience(cls, k: int, num_exits: int) -> EarlyExitPolicy:
        """The patience rule: leave once ``k`` consecutive exits agree on the predicted class.

        A sample leaves at the first exit ``j >= k - 1`` whose argmax prediction equals that
        of exits ``j - k + 1 .. j``; ``k = 1`` sends everybody out at exit 0.

        Args:
            k: Number of consecutive agreeing exits required; at least 1.
            num_exits: Number of exits of the network.

        Returns:
            A policy with ``measure == "patience"`` and ``patience == k``.

        Raises:
            ValueError: If ``k < 1`` or ``num_exits < 1``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"patience k must be an integer >= 1, got {k!r}")
        if isinstance(num_exits, bool) or not isinstance(num_exits, int) or num_exits < 1:
            raise ValueError(f"num_exits must be an integer >= 1, got {num_exits!r}")
        # The confidence for "patience" is the current streak length, so a threshold of k at every
        # exit is exactly the rule "k in a row agree".
        return cls([float(k)] * num_exits, measure="patience")

    @property
    def patience(self) -> int | None:
        """``k`` of a patience policy (see :meth:`with_patience`); ``None`` for the others."""
        return self._patience

    @classmethod
    def calibrate(
        cls,
        logits: LogitsInput,
        exit_fractions: Sequence[float],
        measure: str = "max_prob",
    ) -> EarlyExitPolicy:
        """Thresholds that send a target share of the given samples out at each exit.

        This is the greedy rule of the RANet / MSDNet reference
        (``Tester.dynamic_eval_find_threshold``) and gives the same thresholds and decisions,
        vectorised (one selection per exit). Exit ``k``'s threshold is the
        ``floor(n * exit_fractions[k])``-th highest confidence among the samples that no earlier
        exit took, where ``n`` counts all samples. Samples tied with it leave as well, so an exit
        can take more than its share; an exit whose share rounds down to zero samples, or asks for
        more samples than remain, gets ``inf``. The last exit's share is implied (``-inf``).
        ``floor(n * share)`` is taken in float64, as the reference does when given float64
        shares (its own sweep passes float32 ones).

        Args:
            logits: ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor per
                exit, usually from a held-out validation set.
            exit_fractions: Target share per exit; non-negative, summing to 1.
            measure: Confidence measure: ``"max_prob"``, ``"entropy"`` or ``"margin"``.

        Returns:
            The calibrated policy.

        Raises:
            ValueError: On a malformed ``logits`` or ``exit_fractions`` or an unknown measure.
        """
        _check_calibration_measure(measure)
        stacked = _stack_logits(logits)
        fractions = _check_fractions(exit_fractions, stacked.shape[0])
        with torch.no_grad():
            confidence = _all_confidences(stacked, measure)
            counts = [math.floor(stacked.shape[1] * f) for f in fractions]
            return cls(_greedy_thresholds(confidence, counts), measure=measure)

    @classmethod
    def calibrate_for_cost(
        cls,
        logits: LogitsInput,
        costs: Sequence[float],
        target_mean_cost: float,
        measure: str = "max_prob",
    ) -> EarlyExitPolicy:
        """A policy whose mean cost per sample on ``logits`` stays within a budget.

        The search runs over the reference protocol's geometric family: for a ratio ``p`` the
        policy is :meth:`calibrate` with :func:`geometric_exit_fractions` ``(p, exits)``. The
        mean cost grows with ``p`` (larger ``p`` pushes samples to later exits), so ``p`` is
        bisected in log space over ``[1e-4, 1e4]``; among all policies evaluated, the one with
        the largest mean cost not above the target is returned, because within the family
        spending more of the budget generally buys accuracy. The policy that sends everybody out
        at exit 0 (mean cost ``costs[0]``) is always a candidate, so any target
        ``>= costs[0]`` is met. The mean cost is measured on these samples with ties counted
        as they fall; on other data it will vary by sampling noise.

        Args:
            logits: ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor per
                exit, usually from a held-out validation set.
            costs: ``costs[k]`` is the cumulative cost (e.g. MACs) a sample pays when it leaves at
                exit ``k``; non-negative and non-decreasing.
            target_mean_cost: Largest acceptable mean cost per sample, in the units of ``costs``.
            measure: Confidence measure: ``"max_prob"``, ``"entropy"`` or ``"margin"``.

        Returns:
            The chosen policy; if ``target_mean_cost >= costs[-1]`` the policy that runs every
            sample to the last exit.

        Raises:
            ValueError: If ``target_mean_cost < costs[0]`` (no policy can be that cheap), or on
                malformed inputs.
        """
        _check_calibration_measure(measure)
        stacked = _stack_logits(logits)
        num_exits = stacked.shape[0]
        cost_values = _check_costs(costs, num_exits)
        target = float(target_mean_cost)
        if math.isnan(target):
            raise ValueError("target_mean_cost must not be NaN")
        if target < cost_values[0]:
            raise ValueError(
                f"target_mean_cost {target!r} is below costs[0] = {cost_values[0]!r}, the cost "
                "of leaving at the first exit, so no policy can meet it"
            )
        never = [math.inf] * (num_exits - 1)
        if target >= cost_values[-1]:
            return cls([*never, -math.inf], measure=measure)

        num_samples = stacked.shape[1]
        cost_tensor = torch.tensor(cost_values, dtype=torch.float64)
        with torch.no_grad():
            confidence = _all_confidences(stacked, measure)
            presorted = _sort_confidence(confidence)

            def evaluate(log_p: float) -> tuple[float, EarlyExitPolicy]:
                fractions = geometric_exit_fractions(math.exp(log_p), num_exits)
                wanted = [math.floor(num_samples * f) for f in fractions]
                policy = cls(_greedy_thresholds(confidence, wanted, presorted), measure=measure)
                exits = policy._exits_from_confidence(confidence).cpu()
                taken = torch.bincount(exits, minlength=num_exits).to(torch.float64)
                return float((taken * cost_tensor).sum()) / max(num_samples, 1), policy

            # Everybody at exit 0 meets any feasible target, so there is always an answer.
            best_cost = cost_values[0]
            best = cls([-math.inf, *never[1:], -math.inf], measure=measure)

            def consider(cost: float, policy: EarlyExitPolicy) -> None:
                nonlocal best_cost, best
                if cost <= target and cost > best_cost:
                    best_cost, best = cost, policy

            lo, hi = _LOG_P_MIN, _LOG_P_MAX
            lo_cost, lo_policy = evaluate(lo)
            hi_cost, hi_policy = evaluate(hi)
            consider(lo_cost, lo_policy)
            consider(hi_cost, hi_policy)
            if lo_cost <= target < hi_cost:
                for _ in range(_BISECTION_STEPS):
                    mid = 0.5 * (lo + hi)
                    mid_cost, mid_policy = evaluate(mid)
                    consider(mid_cost, mid_policy)
                    if mid_cost <= target:
                        lo = mid
                    else:
                        hi = mid
                    # A narrower bracket in log p cannot move a share by one sample.
                    if best_cost == target or hi - lo < 1e-12:
                        break
        return best

    # ------------------------------------------------------------------ properties

    @property
    def thresholds(self) -> tuple[float, ...]:
        """One threshold per exit (the last one is never consulted)."""
        return self._thresholds

    @property
    def measure(self) -> str:
        """The confidence measure, one of :data:`MEASURES`."""
        return self._measure

    @property
    def num_exits(self) -> int:
        """Number of exits the policy is built for."""
        return len(self._thresholds)

    # ------------------------------------------------------------------ decisions

    def _check_num_exits(self, num_exits: int) -> None:
        if num_exits != self.num_exits:
            raise ValueError(
                f"the policy has {self.num_exits} thresholds but the logits have {num_exits} "
                "exits; they must match"
            )

    def _exits_from_confidence(self, confidence: Tensor) -> Tensor:
        """Exit index per sample from ``[exits, samples]`` confidences, as step() decides."""
        num_exits, num_samples = confidence.shape[0], confidence.shape[1]
        exits = torch.full(
            (num_samples,), num_exits - 1, dtype=torch.long, device=confidence.device
        )
        # Walking backwards leaves each sample at the first exit that lets it go. (An argmax over
        # a [exits, samples] mask is the obvious alternative but is several times slower on CPU.)
        for k in range(num_exits - 2, -1, -1):
            # Python-scalar comparison, exactly the operation step() performs.
            leave = confidence[k] >= self._thresholds[k]
            exits = torch.where(leave, k, exits)
        return exits

    def simulate(self, logits: LogitsInput) -> Tensor:
        """Exit index of every sample given the logits of all exits.

        Gives exactly the decisions of running :meth:`initial_state` / :meth:`step` exit by exit.

        Args:
            logits: ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor per
                exit.

        Returns:
            ``[samples]`` int64 tensor of exit indices, on the logits' device.

        Raises:
            ValueError: If the logits are malformed or their number of exits differs from the
                number of thresholds.
        """
        stacked = _stack_logits(logits)
        self._check_num_exits(stacked.shape[0])
        with torch.no_grad():
            return self._exits_from_confidence(_all_confidences(stacked, self._measure))

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Per-sample decision state before the first exit.

        Every tensor is batch-first, so a caller that drops the samples that left can index each
        of them with the kept samples' indices.

        Args:
            batch_size: Number of samples entering the network.
            device: Device of the state tensors (that of the logits passed to :meth:`step`).

        Returns:
            The state; empty for the stateless measures, the previous prediction
            (``"prev_pred"``) and streak length (``"streak"``) for patience.
        """
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        if self._measure != "patience":
            return {}
        return {
            # -1 never equals a class index, so the first exit starts a streak of 1.
            "prev_pred": torch.full((batch_size,), -1, dtype=torch.long, device=device),
            "streak": torch.zeros(batch_size, dtype=torch.long, device=device),
        }

    def step(
        self, exit_index: int, logits: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Decides which samples leave at one exit.

        Runs without host-device synchronisation so it can sit inside a CUDA inference loop.

        Args:
            exit_index: Index of the exit that produced ``logits``; exits must be visited in
                order starting at 0.
            logits: ``[samples, classes]`` logits of the samples still in the network.
            state: The state from :meth:`initial_state` or the previous call, indexed down to
                the same samples as ``logits``.

        Returns:
            A ``[samples]`` bool mask (True = the sample leaves now; all True at the last exit)
            and the new state, batch-first, for the same samples as ``logits``.

        Raises:
            ValueError: On an out-of-range exit index, logits that are not 2-D, or a state that
                does not fit.
        """
        if not 0 <= exit_index < self.num_exits:
            raise ValueError(
                f"exit_index {exit_index} is out of range for a policy with {self.num_exits} exits"
            )
        if logits.ndim != 2:
            raise ValueError(
                "step() takes one exit's logits of shape [samples, classes], got shape "
                f"{tuple(logits.shape)}"
            )
        num_samples = logits.shape[0]
        with torch.no_grad():
            if self._measure == "patience":
                missing = {"prev_pred", "streak"} - set(state)
                if missing:
                    raise ValueError(
                        f"patience state lacks {sorted(missing)}; start from initial_state()"
                    )
                for key in ("prev_pred", "streak"):
                    if state[key].shape[0] != num_samples:
                        raise ValueError(
                            f"state[{key!r}] has {state[key].shape[0]} samples but logits have "
                            f"{num_samples}; index the state with the kept samples"
                        )
                pred, streak = _patience_update(logits, state["prev_pred"], state["streak"])
                confidence = streak
                new_state = {"prev_pred": pred, "streak": streak}
            else:
                confidence = _exit_confidence(logits, self._measure)
                new_state = dict(state)
            if exit_index == self.num_exits - 1:
                leave = torch.ones(num_samples, dtype=torch.bool, device=logits.device)
            else:
                leave = confidence >= self._thresholds[exit_index]
        return leave, new_state

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description; infinite thresholds become the strings ``"inf"``/``"-inf"``."""
        return {
            "measure": self._measure,
            "thresholds": [_encode_threshold(t) for t in self._thresholds],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EarlyExitPolicy:
        """Rebuilds a policy written by :meth:`to_dict`.

        Args:
            d: Mapping with ``"thresholds"`` and optionally ``"measure"`` (default
                ``"max_prob"``).

        Returns:
            The policy, equal to the one that was serialised.

        Raises:
            ValueError: If the mapping is malformed.
        """
        if not isinstance(d, Mapping) or "thresholds" not in d:
            raise ValueError(f"expected a mapping with a 'thresholds' entry, got {d!r}")
        raw = d["thresholds"]
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ValueError(f"'thresholds' must be a list, got {raw!r}")
        measure = d.get("measure", "max_prob")
        if not isinstance(measure, str):
            raise ValueError(f"'measure' must be a string, got {measure!r}")
        return cls([_decode_threshold(t) for t in raw], measure=measure)

    # ------------------------------------------------------------------ dunder

    def __repr__(self) -> str:
        if self._patience is not None and self._thresholds == (float(self._patience),) * len(
            self._thresholds
        ):
            return f"EarlyExitPolicy.with_patience({self._patience}, num_exits={self.num_exits})"
        inner = ", ".join(repr(t) for t in self._thresholds)
        if len(self._thresholds) == 1:
            inner += ","
        return f"EarlyExitPolicy(thresholds=({inner}), measure={self._measure!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EarlyExitPolicy):
            return NotImplemented
        return self._measure == other._measure and self._thresholds == other._thresholds

    def __hash__(self) -> int:
        return hash((self._measure, self._thresholds))
