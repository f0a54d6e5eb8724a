"""Confidence measures computed from one exit's logits, the input of threshold policies.

Every measure is oriented so that larger means more confident, so the exit rule
``confidence >= threshold`` is the same for all of them:

* ``"max_prob"``: the largest softmax probability (the RANet / MSDNet reference).
* ``"entropy"``: ``1 - H(p) / log(C)``, the softmax entropy normalised to ``[0, 1]`` and
  flipped; 1 for a one-hot prediction, 0 for a uniform one.
* ``"margin"``: top-1 minus top-2 softmax probability.

Non-finite logits are handled on purpose rather than left to produce NaN:

* ``+inf`` logits: the softmax is taken as the limit, uniform over the ``+inf`` classes and 0
  elsewhere (one ``+inf`` logit gives ``max_prob == 1``).
* ``-inf`` logits are classes of probability 0.
* A row holding a NaN (or only ``-inf``) has no meaningful prediction: its confidence is
  ``-inf``, so it is never confident enough to leave early. Such a sample (e.g. from a NaN
  image) goes to the last exit, and it never counts toward a calibration quota.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor

from adanet._validation import require_choice

__all__ = ["MEASURES", "check_measure", "exit_confidences", "safe_probabilities"]

#: Confidence measures understood by threshold policies.
MEASURES: Final[tuple[str, ...]] = ("max_prob", "entropy", "margin")


def check_measure(measure: object) -> str:
    """Returns ``measure`` if it is one of :data:`MEASURES`, else raises ValueError."""
    if measure == "patience":
        allowed = ", ".join(repr(m) for m in MEASURES)
        raise ValueError(
            f"measure must be one of {allowed}, got 'patience' (patience rules are "
            "adanet.PatienceExitPolicy)"
        )
    require_choice("measure", measure, MEASURES)
    return str(measure)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision logits would make confidences tie far more often and lose the ordering that
    # calibration relies on, so compute in at least float32.
    if dtype.is_floating_point and torch.finfo(dtype).bits >= 32:
        return dtype
    return torch.float32


def _limit_logits(x: Tensor) -> Tensor:
    """Rows with a ``+inf`` logit become 0 there and ``-inf`` elsewhere: the softmax limit."""
    pos_inf = torch.isposinf(x)
    has_inf = pos_inf.any(dim=-1, keepdim=True)
    limit = torch.where(pos_inf, torch.zeros_like(x), torch.full_like(x, -math.inf))
    return torch.where(has_inf, limit, x)


def safe_probabilities(logits: Tensor) -> Tensor:
    """Softmax over the last dimension in at least float32, with ``+inf`` logits as limits."""
    return torch.softmax(_limit_logits(logits.to(_work_dtype(logits.dtype))), dim=-1)


def _scaled(logits: Tensor, temperatures: float | Sequence[float] | None) -> Tensor:
    x = logits.to(_work_dtype(logits.dtype))
    if temperatures is None:
        return x
    if isinstance(temperatures, int | float):
        return x / float(temperatures)
    # One temperature per exit along the leading dimension of [exits, samples, classes].
    scale = torch.tensor([float(t) for t in temperatures], dtype=x.dtype, device=x.device)
    return x / scale.view(-1, *([1] * (x.ndim - 1)))


def exit_confidences(
    logits: Tensor, measure: str, temperatures: float | Sequence[float] | None = None
) -> Tensor:
    """Confidence of every row: ``[..., classes]`` logits give ``[...]`` confidences.

    Args:
        logits: One exit's ``[samples, classes]`` logits, or ``[exits, samples, classes]``.
        measure: One of :data:`MEASURES`.
        temperatures: Divide the logits by this before the measure: one float, or one per
            exit for ``[exits, samples, classes]`` logits. ``None`` means 1.

    Returns:
        Confidences in at least float32; ``-inf`` for rows with a NaN (see the module notes).
    """
    x = _limit_logits(_scaled(logits, temperatures))
    num_classes = x.shape[-1]
    if measure == "max_prob":
        confidence = torch.softmax(x, dim=-1).amax(dim=-1)
    elif measure == "margin":
        probs = torch.softmax(x, dim=-1)
        if num_classes == 1:
            confidence = probs[..., 0]
        else:
            top2 = probs.topk(2, dim=-1).values
            confidence = top2[..., 0] - top2[..., 1]
    elif measure == "entropy":
        log_probs = torch.log_softmax(x, dim=-1)
        probs = log_probs.exp()
        # 0 * log(0) is 0 by convention; a -inf logit would otherwise turn the sum into NaN.
        plogp = torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))
        if num_classes == 1:
            confidence = probs[..., 0]  # 1, or NaN for a NaN row
        else:
            entropy = -plogp.sum(dim=-1)
            confidence = 1.0 - entropy / math.log(num_classes)
    else:
        check_measure(measure)
        raise AssertionError(measure)  # pragma: no cover
    # Checked on the logits, not the result: entropy's 0 * log(0) guard would hide a NaN.
    invalid = x.isnan().any(dim=-1) | torch.isneginf(x).all(dim=-1) | confidence.isnan()
    return torch.where(invalid, torch.full_like(confidence, -math.inf), confidence)
