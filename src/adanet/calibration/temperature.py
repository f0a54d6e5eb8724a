"""Per-exit temperature scaling and the expected calibration error.

Early exits are often over- or under-confident, and a threshold on a miscalibrated confidence
means something different at every exit. Temperature scaling divides exit ``k``'s logits by a
scalar ``T_k`` fitted on held-out data; it changes confidences, never the predicted class.
:class:`adanet.EarlyExitPolicy` applies ``temperatures`` before its confidence measure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor

from adanet._validation import check_targets, is_int, require_samples
from adanet.policies.confidence import exit_confidences, safe_probabilities
from adanet.policies.protocol import LogitsInput, stack_logits

__all__ = ["expected_calibration_error", "fit_temperatures"]

# Temperatures are searched in [1e-3, 1e3]; outside it the data is separable (T -> 0) or
# carries no signal (T -> inf) and the end of the range is returned.
_LOG_BETA_RANGE: Final[tuple[float, float]] = (math.log(1e-3), math.log(1e3))
_BISECTION_STEPS: Final[int] = 60


def _nll_slope(logits: Tensor, target_logit: Tensor, beta: Tensor) -> Tensor:
    """d/dbeta of the mean NLL of softmax(beta * logits): E_p[z] - z_y, averaged; per exit."""
    probs = torch.softmax(logits * beta.view(-1, 1, 1), dim=2)
    return ((probs * logits).sum(dim=2) - target_logit).mean(dim=1)


def fit_temperatures(val_logits: LogitsInput, val_targets: Tensor) -> list[float]:
    """One temperature per exit minimising the negative log-likelihood on held-out logits.

    The NLL of ``softmax(z / T)`` is convex in ``1 / T``, so its minimum is found by bisecting
    the sign of the derivative, for all exits at once, deterministically. Rows with a non-finite
    logit are left out of the fit.

    Args:
        val_logits: ``[exits, N, classes]`` logits (or one tensor per exit) of held-out samples.
        val_targets: ``[N]`` integer class indices.

    Returns:
        ``T_k`` for every exit, in ``[1e-3, 1e3]``; divide exit ``k``'s logits by it. An exit
        whose logits are equal across classes for every sample gives 1.0: no temperature
        changes its probabilities.

    Raises:
        TypeError: On non-integer targets.
        ValueError: On malformed logits or targets, no samples, or no sample with finite
            logits.

    Warns:
        UserWarning: When the data cannot determine a temperature: an exit ending at a bound
            of the search range (too few samples, or logits that separate the classes
            perfectly), or an exit with constant logits.
    """
    stacked = stack_logits(val_logits, "val_logits")
    num_exits, num_samples, num_classes = stacked.shape
    require_samples(num_samples, "val_logits")
    targets = check_targets(val_targets, num_samples, num_classes, "val_targets")
    with torch.no_grad():
        z = stacked.detach().to(torch.float64)
        finite = torch.isfinite(z).all(dim=2).all(dim=0)
        if not bool(finite.any()):
            raise ValueError("fit_temperatures needs at least one sample with finite logits")
        z = z[:, finite]
        target_logit = z.gather(
            2, targets[finite].to(z.device).view(1, -1, 1).expand(num_exits, -1, 1)
        )
        target_logit = target_logit.squeeze(2)
        lo = torch.full((num_exits,), _LOG_BETA_RANGE[0], dtype=torch.float64, device=z.device)
        hi = torch.full_like(lo, _LOG_BETA_RANGE[1])
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            rising = _nll_slope(z, target_logit, mid.exp()) > 0
            hi = torch.where(rising, mid, hi)
            lo = torch.where(rising, lo, mid)
        beta = (0.5 * (lo + hi)).exp()
        flat = (z.amax(dim=2) == z.amin(dim=2)).all(dim=1).tolist()
    temperatures = [1.0 if f else 1.0 / b for b, f in zip(beta.tolist(), flat, strict=True)]
    _warn_undetermined(temperatures, flat, int(finite.sum()))
    return temperatures


def _warn_undetermined(temperatures: list[float], flat: list[bool], samples: int) -> None:
    low, high = (math.exp(-b) for b in reversed(_LOG_BETA_RANGE))
    stuck = [k for k, t in enumerate(temperatures) if t <= low * 1.01 or t >= high / 1.01]
    constant = [k for k, f in enumerate(flat) if f]
    if stuck:
        warnings.warn(
            f"fit_temperatures: the temperatures of exits {stuck} reached the end of the search "
            f"range [{low:g}, {high:g}]: {samples} sample(s) do not determine them (too few, or "
            "logits that separate the classes perfectly); fit on more held-out data",
            UserWarning,
            stacklevel=3,
        )
    if constant:
        warnings.warn(
            f"fit_temperatures: exits {constant} have equal logits for every class of every "
            "sample, so no temperature changes them; they get 1.0",
            UserWarning,
            stacklevel=3,
        )


def expected_calibration_error(
    logits: LogitsInput,
    targets: Tensor,
    *,
    temperatures: Sequence[float] | None = None,
    num_bins: int = 15,
) -> list[float]:
    """Expected calibration error of every exit's max-probability confidence.

    ``sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|`` over ``num_bins`` equal-width
    confidence bins; 0 is perfectly calibrated. Rows with a NaN logit count as wrong with
    confidence 0.

    Args:
        logits: ``[exits, N, classes]`` (or one tensor per exit).
        targets: ``[N]`` integer class indices.
        temperatures: Divide exit ``k``'s logits by ``temperatures[k]`` first.
        num_bins: Number of bins; at least 1.

    Returns:
        One ECE per exit, in ``[0, 1]``.
    """
    stacked = stack_logits(logits)
    num_exits, num_samples, num_classes = stacked.shape
    labels = check_targets(targets, num_samples, num_classes).to(stacked.device)
    if not is_int(num_bins) or num_bins < 1:
        raise ValueError(f"num_bins must be an int >= 1, got {num_bins!r}")
    if num_samples == 0:
        return [0.0] * num_exits
    with torch.no_grad():
        confidence = exit_confidences(stacked, "max_prob", temperatures).clamp(min=0.0)
        valid = ~stacked.isnan().any(dim=2)
        correct = ((safe_probabilities(stacked).argmax(dim=2) == labels) & valid).double()
        bins = (confidence.double() * num_bins).ceil().long().clamp(1, num_bins) - 1
        gap = torch.zeros(num_exits, num_bins, dtype=torch.float64, device=stacked.device)
        gap.scatter_add_(1, bins, correct - confidence.double())
        return (gap.abs().sum(dim=1) / num_samples).tolist()
