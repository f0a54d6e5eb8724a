"""Budgeted batch classification, the evaluation protocol of RANet and MSDNet.

For a range of budgets, thresholds are calibrated on validation logits so that a geometric share
of samples leaves at each exit (:func:`adanet.calibration.shares.geometric_exit_fractions`), then
accuracy and mean cost are measured on test logits. :func:`budgeted_sweep` gives the numbers of
the reference ``dynamic_evaluate`` (accuracy as a fraction rather than percent) from
precomputed logits, vectorised. Any :class:`adanet.ExitDecider` can be swept instead through
``calibrator``. :mod:`adanet.compat.budgeted_protocol` reproduces the reference's float32
arithmetic on its stored probabilities bit for bit.

The reference code, unless run with ``--use-valid``, tuned the thresholds on the test set
itself; :func:`warn_if_same_data` flags that, and :func:`adanet.data.holdout_split` makes a
validation split.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import torch
from torch import Tensor

from adanet._validation import check_costs, check_targets, is_real, require_samples
from adanet.calibration.shares import (
    geometric_exit_fractions,
    greedy_thresholds,
    sort_confidence,
)
from adanet.policies.confidence import check_measure, exit_confidences, safe_probabilities
from adanet.policies.protocol import (
    ExitDecider,
    LogitsInput,
    check_policy,
    policy_exits,
    stack_logits,
)
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "DEFAULT_PS",
    "BudgetRecord",
    "Calibrator",
    "budgeted_sweep",
    "reference_exit_counts",
    "warn_if_same_data",
]

PolicyT = TypeVar("PolicyT", bound=ExitDecider)

#: Builds the policy for one budget: ``calibrator(p, val_logits, val_targets)``.
Calibrator = Callable[[float, Tensor, Tensor], PolicyT]


#: The reference sweep: ``p = 1/20, 2/20, ..., 39/20``.
DEFAULT_PS: tuple[float, ...] = tuple(k / 20 for k in range(1, 40))


def reference_exit_counts(p: float, num_exits: int, num_samples: int) -> list[int]:
    """``floor(n * share)`` per exit with the reference's float32 geometric shares.

    Falls back to the float64 :func:`adanet.calibration.shares.geometric_exit_fractions` where
    ``p ** num_exits`` leaves float32's range (the reference would produce NaN there).
    """
    p_t = torch.tensor([p], dtype=torch.float32)
    ranks = torch.arange(1, num_exits + 1, dtype=torch.float32)
    shares = torch.exp(torch.log(p_t) * ranks)
    shares /= shares.sum()
    if not bool(torch.isfinite(shares).all()):
        return [math.floor(num_samples * f) for f in geometric_exit_fractions(p, num_exits)]
    return [int(v) for v in torch.floor(num_samples * shares).tolist()]


@dataclass(frozen=True)
class BudgetRecord(Generic[PolicyT]):
    """Result of one budget of a :func:`budgeted_sweep`.

    Attributes:
        p: Ratio of the geometric exit distribution the policy was calibrated for.
        accuracy: Top-1 accuracy on the test logits, a fraction in ``[0, 1]``.
        mean_cost: Expected cost per test sample, ``sum_k share_k * costs[k]``, in the units of
            ``costs``.
        exit_fractions: Share of test samples that left at each exit.
        policy: The calibrated policy.
    """

    p: float
    accuracy: float
    mean_cost: float
    exit_fractions: tuple[float, ...]
    policy: PolicyT


def warn_if_same_data(
    val_logits: LogitsInput, test_logits: LogitsInput, *, stacklevel: int = 2
) -> bool:
    """Warns when calibration and evaluation logits are the same data.

    The reference code, run without ``--use-valid``, passed the test loader as the validation
    loader, so thresholds were tuned on the very samples they were scored on, which flatters the
    budgeted curve. This emits a :class:`UserWarning` when ``val_logits`` and ``test_logits``
    are the same tensor or equal in value.

    Args:
        val_logits: Logits the thresholds are calibrated on.
        test_logits: Logits the thresholds are evaluated on.
        stacklevel: Passed to :func:`warnings.warn`; the default blames the caller.

    Returns:
        True if a warning was emitted.
    """
    same = val_logits is test_logits
    if not same:
        val = stack_logits(val_logits)
        test = stack_logits(test_logits)
        same = (
            val.shape == test.shape
            and val.device == test.device
            and (
                (val.data_ptr() == test.data_ptr() and val.stride() == test.stride())
                or bool(torch.equal(val, test))
            )
        )
    if same:
        warnings.warn(
            "the validation and test logits are the same data: the early-exit thresholds were "
            "tuned on the test data, so the reported accuracy is optimistic; calibrate on a "
            "held-out split (see adanet.data.holdout_split)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return same


def _check_ps(ps: Sequence[float] | None) -> list[float]:
    if ps is None:
        return list(DEFAULT_PS)
    if isinstance(ps, str | bytes) or not isinstance(ps, Sequence | Tensor):
        raise TypeError(f"ps must be a sequence of positive numbers, got {ps!r}")
    values = list(ps.tolist()) if isinstance(ps, Tensor) else list(ps)
    if not values:
        raise ValueError("ps must hold at least one p")
    for p in values:
        if not is_real(p):
            raise TypeError(f"every p must be a positive number, got {p!r} in {values!r}")
        if not math.isfinite(p) or p <= 0.0:
            raise ValueError(f"every p must be positive and finite, got {p!r}")
    return [float(p) for p in values]


def _check_pair(val: Tensor, test: Tensor) -> None:
    if test.shape[0] != val.shape[0]:
        raise ValueError(
            f"val_logits have {val.shape[0]} exits but test_logits have {test.shape[0]}; "
            "they must match"
        )
    if test.shape[2] != val.shape[2]:
        raise ValueError(
            f"val_logits have {val.shape[2]} classes but test_logits have {test.shape[2]}"
        )
    if test.shape[1] == 0:
        raise ValueError("test_logits have no samples")


@overload
def budgeted_sweep(
    val_logits: LogitsInput,
    val_targets: Tensor,
    test_logits: LogitsInput,
    test_targets: Tensor,
    costs: Sequence[float],
    ps: Sequence[float] | None = None,
    measure: str = "max_prob",
    *,
    calibrator: None = None,
    cost_convention: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> list[BudgetRecord[EarlyExitPolicy]]: ...


@overload
def budgeted_sweep(
    val_logits: LogitsInput,
    val_targets: Tensor,
    test_logits: LogitsInput,
    test_targets: Tensor,
    costs: Sequence[float],
    ps: Sequence[float] | None = None,
    measure: str = "max_prob",
    *,
    calibrator: Calibrator[PolicyT],
    cost_convention: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> list[BudgetRecord[PolicyT]]: ...


def budgeted_sweep(
    val_logits: LogitsInput,
    val_targets: Tensor,
    test_logits: LogitsInput,
    test_targets: Tensor,
    costs: Sequence[float],
    ps: Sequence[float] | None = None,
    measure: str = "max_prob",
    *,
    calibrator: Calibrator[PolicyT] | None = None,
    cost_convention: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> list[BudgetRecord[EarlyExitPolicy]] | list[BudgetRecord[PolicyT]]:
    """Budgeted-batch sweep of the RANet / MSDNet reference (``dynamic_evaluate``).

    For each ``p`` the thresholds are calibrated on the validation logits by the greedy rule
    (:func:`adanet.calibration.shares.greedy_thresholds`) for the geometric shares of ``p``,
    with the per-exit counts rounded in float32 exactly as the reference rounds them
    (:func:`reference_exit_counts`); every test sample then
    leaves at its first exit whose confidence reaches the threshold. This gives the reference's
    accuracy (as a fraction) and expected cost. A test sample counts as right when the argmax of
    its softmax probabilities at its exit is its target; a row with a NaN logit is never right.

    Args:
        val_logits: ``[exits, samples, classes]`` logits (or one tensor per exit) to calibrate on.
        val_targets: ``[samples]`` integer class indices of the validation samples.
        test_logits: Logits to evaluate on, same number of exits and classes.
        test_targets: ``[samples]`` integer class indices of the test samples.
        costs: ``costs[k]`` is the cumulative cost of leaving at exit ``k`` (MACs or seconds);
            non-negative and non-decreasing.
        ps: Ratios of the geometric exit distribution; defaults to :data:`DEFAULT_PS`.
        measure: Confidence measure: ``"max_prob"`` (the reference's), ``"entropy"`` or
            ``"margin"``.
        calibrator: Instead of the greedy thresholds, any :class:`adanet.ExitDecider`:
            ``calibrator(p, val_logits, val_targets)`` returns the policy for budget ``p``,
            and its ``simulate`` decides the test samples' exits.
        cost_convention: Recorded in the calibrated threshold policies (e.g. ``"actual"``,
            ``"reference"``, ``"latency"``), so they refuse other costs later.
        input_size: Input size the costs were measured for, recorded likewise.

    Returns:
        One :class:`BudgetRecord` per ``p``, in the order of ``ps``.

    Raises:
        TypeError: On targets that are not integer tensors, or ``ps`` that is not a sequence
            of numbers.
        ValueError: On mismatched shapes, out-of-range targets, bad costs, non-positive ``p``,
            an unknown measure, or no validation or test samples.

    Warns:
        UserWarning: If the validation and test logits are the same data.
    """
    check_measure(measure)
    val = stack_logits(val_logits, "val_logits")
    test = stack_logits(test_logits, "test_logits")
    _check_pair(val, test)
    require_samples(val.shape[1], "val_logits")
    require_samples(test.shape[1], "test_logits")
    num_exits, _, num_classes = val.shape
    val_t = check_targets(val_targets, val.shape[1], num_classes, "val_targets")
    targets = check_targets(test_targets, test.shape[1], num_classes, "test_targets")
    cost_values = check_costs(costs, num_exits)
    p_values = _check_ps(ps)
    warn_if_same_data(val_logits, test_logits, stacklevel=3)

    num_test = test.shape[1]
    with torch.no_grad():
        # Confidences and per-exit correctness do not depend on p: compute them once.
        val_conf = exit_confidences(val, measure)
        val_sorted = sort_confidence(val_conf)
        test_conf = exit_confidences(test, measure)
        # Predictions from the softmax probabilities, as the reference takes the argmax of the
        # probabilities it stored; this matters only for logits that round to the same value.
        valid = ~test.isnan().any(dim=2)
        correct = (safe_probabilities(test).argmax(dim=2) == targets.to(test.device)) & valid
        cost_tensor = torch.tensor(cost_values, dtype=torch.float64)
        records: list[BudgetRecord[Any]] = []
        for p in p_values:
            policy: ExitDecider
            if calibrator is None:
                counts = reference_exit_counts(p, num_exits, val.shape[1])
                threshold_policy = EarlyExitPolicy(
                    greedy_thresholds(val_conf, counts, presorted=val_sorted),
                    measure,
                    num_classes=num_classes,
                    cost_convention=cost_convention,
                    input_size=input_size,
                )
                exits = threshold_policy.exits_from_confidence(test_conf)
                policy = threshold_policy
            else:
                policy = check_policy(calibrator(p, val, val_t), "the calibrator's policy")
                exits = policy_exits(policy, test)
            realised = torch.bincount(exits.cpu(), minlength=num_exits).to(torch.float64)
            shares = realised / num_test
            records.append(
                BudgetRecord(
                    p=p,
                    accuracy=int(correct.gather(0, exits.unsqueeze(0)).sum()) / num_test,
                    mean_cost=float((shares * cost_tensor).sum()),
                    exit_fractions=tuple(float(s) for s in shares),
                    policy=policy,
                )
            )
    return records
