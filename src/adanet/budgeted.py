"""Budgeted batch classification, the evaluation protocol of RANet and MSDNet.

For a range of budgets, thresholds are calibrated on validation logits so that a geometric share
of samples leaves at each exit (:func:`adanet.policy.geometric_exit_fractions`), then accuracy
and mean cost are measured on test logits. :func:`budgeted_sweep` reproduces the numbers of the
reference ``dynamic_evaluate`` (accuracy as a fraction rather than percent) from precomputed
logits, vectorised: the 39-point sweep takes milliseconds instead of tens of seconds.

The reference code, unless run with ``--use-valid``, tuned the thresholds on the test set
itself; :func:`warn_if_same_data` flags that, and :func:`adanet.data.holdout_split` makes a
validation split.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adanet.policy import (
    EarlyExitPolicy,
    LogitsInput,
    _all_confidences,
    _check_calibration_measure,
    _check_costs,
    _greedy_thresholds,
    _sort_confidence,
    _stack_logits,
    _work_dtype,
    geometric_exit_fractions,
)

__all__ = [
    "DEFAULT_PS",
    "BudgetRecord",
    "budgeted_sweep",
    "warn_if_same_data",
]

#: The reference sweep: ``p = 1/20, 2/20, ..., 39/20``.
DEFAULT_PS: tuple[float, ...] = tuple(k / 20 for k in range(1, 40))


@dataclass(frozen=True)
class BudgetRecord:
    """Result of one budget of a :func:`budgeted_sweep`.

    Attributes:
        p: Ratio of the geometric exit distribution the thresholds were calibrated for.
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
    policy: EarlyExitPolicy


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
        val = _stack_logits(val_logits)
        test = _stack_logits(test_logits)
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


def _reference_exit_counts(p: float, num_exits: int, num_samples: int) -> list[int]:
    """``floor(n * share)`` per exit, computed exactly as the reference ``dynamic_evaluate`` does.

    The reference builds the geometric shares in float32 (``exp(log(p) * [1..n])``, normalised)
    and multiplies the sample count by a float32 share, so its rounding differs from the float64
    :func:`geometric_exit_fractions` by one sample now and then; repeating its arithmetic keeps
    the sweep's numbers identical to the reference's.
    """
    p_t = torch.tensor([p], dtype=torch.float32)
    ranks = torch.arange(1, num_exits + 1, dtype=torch.float32)
    shares = torch.exp(torch.log(p_t) * ranks)
    shares /= shares.sum()
    if not bool(torch.isfinite(shares).all()):
        # Outside float32's range (p**num_exits overflows): fall back to the stable float64 shares.
        return [math.floor(num_samples * f) for f in geometric_exit_fractions(p, num_exits)]
    return [int(v) for v in torch.floor(num_samples * shares).tolist()]


def _check_targets(targets: Tensor, num_samples: int, name: str) -> Tensor:
    if not isinstance(targets, Tensor) or targets.ndim != 1:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"{name} must be a 1-D tensor of class indices, got {shape}")
    if targets.shape[0] != num_samples:
        raise ValueError(
            f"{name} has {targets.shape[0]} samples but the matching logits have {num_samples}"
        )
    # The reference stores targets as floats; accept them if they are whole numbers.
    if targets.is_floating_point() and not bool(torch.equal(targets, targets.round())):
        raise ValueError(f"{name} must hold class indices, got non-integer values")
    return targets.long()


def budgeted_sweep(
    val_logits: LogitsInput,
    val_targets: Tensor,
    test_logits: LogitsInput,
    test_targets: Tensor,
    costs: Sequence[float],
    ps: Sequence[float] | None = None,
    measure: str = "max_prob",
) -> list[BudgetRecord]:
    """Budgeted-batch sweep of the RANet / MSDNet reference (``dynamic_evaluate``).

    For each ``p`` the thresholds are calibrated on the validation logits by the greedy rule of
    :meth:`EarlyExitPolicy.calibrate` for the shares :func:`geometric_exit_fractions`
    ``(p, exits)``, with the per-exit sample counts rounded in float32 exactly as the reference
    rounds them (float64 shares differ by one sample in rare cases); every
    test sample then leaves at its first exit whose confidence reaches the threshold (the last
    exit takes everybody left). This gives the accuracy and expected cost of the reference
    ``dynamic_eval_with_threshold``, with accuracy as a fraction instead of percent.

    Args:
        val_logits: ``[exits, samples, classes]`` logits (or one tensor per exit) to calibrate on.
        val_targets: ``[samples]`` class indices of the validation samples. Only checked for
            shape: calibration does not look at labels.
        test_logits: Logits to evaluate on, same number of exits and classes.
        test_targets: ``[samples]`` class indices of the test samples.
        costs: ``costs[k]`` is the cumulative cost (e.g. MACs) of leaving at exit ``k``;
            non-negative and non-decreasing.
        ps: Ratios of the geometric exit distribution; defaults to :data:`DEFAULT_PS`.
        measure: Confidence measure: ``"max_prob"`` (the reference's), ``"entropy"`` or
            ``"margin"``.

    Returns:
        One :class:`BudgetRecord` per ``p``, in the order of ``ps``.

    Raises:
        ValueError: On mismatched shapes, bad costs, non-positive ``p`` or an unknown measure.

    Warns:
        UserWarning: If the validation and test logits are the same data.
    """
    _check_calibration_measure(measure)
    val = _stack_logits(val_logits)
    test = _stack_logits(test_logits)
    num_exits = val.shape[0]
    if test.shape[0] != num_exits:
        raise ValueError(
            f"val_logits have {num_exits} exits but test_logits have {test.shape[0]}; "
            "they must match"
        )
    if test.shape[2] != val.shape[2]:
        raise ValueError(
            f"val_logits have {val.shape[2]} classes but test_logits have {test.shape[2]}"
        )
    if test.shape[1] == 0:
        raise ValueError("test_logits have no samples")
    _check_targets(val_targets, val.shape[1], "val_targets")
    targets = _check_targets(test_targets, test.shape[1], "test_targets").to(test.device)
    cost_values = _check_costs(costs, num_exits)
    p_values = [float(p) for p in (DEFAULT_PS if ps is None else ps)]
    for p in p_values:
        if not math.isfinite(p) or p <= 0.0:
            raise ValueError(f"every p must be positive and finite, got {p!r}")
    warn_if_same_data(val_logits, test_logits, stacklevel=3)

    num_test = test.shape[1]
    with torch.no_grad():
        # Confidences and per-exit correctness do not depend on p: compute them once.
        val_conf = _all_confidences(val, measure)
        val_sorted = _sort_confidence(val_conf)
        test_conf = _all_confidences(test, measure)
        # Predictions from the softmax probabilities, as the reference takes the argmax of the
        # probabilities it stored; this matters only for logits so close that they round to the
        # same probability.
        probs = torch.softmax(test.to(_work_dtype(test.dtype)), dim=-1)
        correct = probs.argmax(dim=-1) == targets.unsqueeze(0)  # [exits, samples]
        cost_tensor = torch.tensor(cost_values, dtype=torch.float64)

        records: list[BudgetRecord] = []
        for p in p_values:
            counts = _reference_exit_counts(p, num_exits, val.shape[1])
            policy = EarlyExitPolicy(
                _greedy_thresholds(val_conf, counts, val_sorted), measure=measure
            )
            exits = policy._exits_from_confidence(test_conf)
            num_correct = correct.gather(0, exits.unsqueeze(0)).sum()
            realised = torch.bincount(exits, minlength=num_exits).cpu().to(torch.float64)
            shares = realised / num_test
            records.append(
                BudgetRecord(
                    p=p,
                    accuracy=int(num_correct) / num_test,
                    mean_cost=float((shares * cost_tensor).sum()),
                    exit_fractions=tuple(float(s) for s in shares),
                    policy=policy,
                )
            )
    return records
