"""Audits: the few samples an online controller sends to the last exit to check itself.

An audited sample runs to the last exit whatever its confidence; on the way the controller
notes the exit it *would* have left at, with that exit's prediction and confidence. Comparing
that prediction with the last exit's gives, without labels, one honest observation of the
disagreement the policy causes.

Which samples are audited depends only on their position in the stream (the count of images
observed before them), through the golden-ratio (Weyl) sequence ``frac(i * phi + offset)``:
deterministic, so a replay (``simulate``) audits exactly the samples the real run audits, and
evenly spread, so any stretch of ``m`` images holds about ``share * m`` audits (no global RNG,
no clumps).

The controller's map from confidence to disagreement (:class:`.DisagreementMap`) is fitted on
calibration data; the audits correct it on the stream with a ratio estimator (as in survey
sampling, Cochran, *Sampling Techniques*, 1977, ch. 6: scale the model's prediction by
observed / predicted over the audited sample), with a prior of a few pseudo-observations,
exponential forgetting, and the upper end of a one-sigma Poisson interval on the observed
count. At 5% audits and a drop of 2% an audit disagrees about once in 1,000 images, far too
rarely to measure the map's error within a block of the stream; the upper bound keeps the
correction from trusting a lucky streak, and it is what keeps the realized drop near the
target when the map is optimistic (on the shifted digits-affine stream the map misses about a
fifth of the hard images' disagreements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import torch
from torch import Tensor

__all__ = [
    "AUDIT",
    "POSITION",
    "WOULD_CONF",
    "WOULD_EXIT",
    "WOULD_PRED",
    "AuditLedger",
    "AuditRecord",
    "audit_mask",
    "noted_replay",
]

_PHI: Final[float] = (math.sqrt(5.0) - 1.0) / 2.0
_OFFSET_STEP: Final[float] = 0.7548776662466927  # 1/plastic number: another irrational step
# The ratio starts as if this many disagreements had been both predicted and seen ...
_PRIOR: Final[float] = 4.0
# ... and is the upper end of a one-sigma interval (Poisson counts) on observed / predicted:
# with a few audits the correction is too noisy to trust downward, and the controller must not
# overspend its drop on a lucky streak of agreeing audits.
_Z: Final[float] = 1.0
# Each audit's weight decays by this factor per later audit (a memory of about 1,000 audits).
_FORGET: Final[float] = 1.0 - 1.0 / 1000.0
# The correction never scales the map by more than this factor either way.
_RATIO_LIMIT: Final[float] = 8.0


def audit_mask(start: int, size: int, share: float, seed: int) -> Tensor:
    """``[size]`` bool on the CPU: which of the images ``start .. start + size - 1`` are audited."""
    if share <= 0.0 or size == 0:
        return torch.zeros(size, dtype=torch.bool)
    offset = math.modf((seed + 1) * _OFFSET_STEP)[0]
    # Plain Python floats (IEEE doubles): one code path for every batch size, and at the small
    # batches of online serving cheaper than a chain of tensor operations.
    return torch.tensor(
        [math.modf((start + i) * _PHI + offset)[0] < share for i in range(size)],
        dtype=torch.bool,
    )


#: Columns of the notes ``step`` keeps per sample: one float64 tensor, so that compacting the
#: state after an exit costs one index instead of five.
AUDIT, POSITION, WOULD_EXIT, WOULD_PRED, WOULD_CONF = range(5)


@dataclass
class AuditRecord:
    """What ``step`` noted for the samples still in at the second-to-last exit.

    Attributes:
        start: Stream position of the batch's first image.
        size: Images in the batch.
        any_audit: Whether any image of the batch is audited.
        notes: ``[m, 5]`` float64 notes of those samples (columns :data:`AUDIT` flag, input
            :data:`POSITION`, the exit each :data:`WOULD_EXIT` have left at (the last: none
            earlier), the class it :data:`WOULD_PRED` have predicted there, and its
            confidence there, :data:`WOULD_CONF`), or ``None``.
    """

    start: int
    size: int
    any_audit: bool = False
    notes: Tensor | None = None

    def audited(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """Input position, would-exit, would-prediction and would-confidence of the audited."""
        if self.notes is None:
            return None
        notes = self.notes.cpu()
        rows = notes[notes[:, AUDIT] > 0]
        return (
            rows[:, POSITION].long(),
            rows[:, WOULD_EXIT].long(),
            rows[:, WOULD_PRED].long(),
            rows[:, WOULD_CONF],
        )


@dataclass
class AuditLedger:
    """Audit totals and the forgetting sums of the ratio estimator (all JSON-safe numbers).

    Attributes:
        audits: Audited samples observed.
        disagreements: Of those, how many would have left early with another class.
        seen: Forgetting sum of observed disagreements.
        predicted: Forgetting sum of the map's predicted disagreements for the same samples.
    """

    audits: int = 0
    disagreements: int = 0
    seen: float = 0.0
    predicted: float = 0.0

    def add(self, observed: Tensor, predicted: Tensor) -> None:
        """Adds audited samples' observed (0/1) and predicted disagreements."""
        count = int(observed.numel())
        if count == 0:
            return
        decay = _FORGET**count
        self.seen = decay * self.seen + float(observed.sum())
        self.predicted = decay * self.predicted + float(predicted.sum())
        self.audits += count
        self.disagreements += int(observed.sum())

    @property
    def ratio(self) -> float:
        """How much more often audits disagree than the map predicts (1 with no audits)."""
        seen = self.seen + _PRIOR
        value = (seen + _Z * math.sqrt(seen)) / (self.predicted + _PRIOR)
        return min(max(value, 1.0 / _RATIO_LIMIT), _RATIO_LIMIT)


def noted_replay(
    logits: Tensor, confidence: list[Tensor], would: Tensor, notes: Tensor
) -> tuple[Tensor, Tensor]:
    """Audit notes of a batch replayed from its all-exit logits.

    Args:
        logits: ``[exits, N, classes]`` all-exit logits.
        confidence: ``[N]`` confidences at every exit but the last.
        would: ``[N]`` the exit each sample would leave at without audits.
        notes: ``[N, 5]`` the batch's notes from ``initial_state``.

    Returns:
        ``[N]`` the exits taken (audited samples go to the last) and the completed notes:
        the exit each audited sample would have left at, with its prediction and confidence
        there (zeros for samples that would have reached the last exit anyway).
    """
    n, last = int(logits.shape[1]), int(logits.shape[0]) - 1
    notes = notes.clone()
    exits = torch.where(notes[:, AUDIT] > 0, last, would)
    rows = torch.arange(n, device=logits.device)
    early = would < last
    picked = torch.stack([*confidence, confidence[0]])[would, rows]  # the last row is unused
    notes[:, WOULD_EXIT] = would.double()
    notes[:, WOULD_PRED] = torch.where(early, logits[would, rows].argmax(dim=1).double(), 0.0)
    notes[:, WOULD_CONF] = torch.where(early, picked.double(), 0.0)
    return exits, notes
