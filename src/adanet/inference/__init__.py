"""Running a network exit by exit: real batched early exit and the static baselines.

* :func:`early_exit`: every sample leaves at the first exit its policy lets it; the samples
  that remain go on, padded to a bounded set of sub-batch sizes (:class:`SizeBuckets`).
* :class:`EarlyExitResult`: each sample's logits, exit and cost.
* :func:`run_to_exit`: the static network truncated at one exit, computing no other head.
* :mod:`adanet.inference.budget`: the hard per-batch budget behind ``early_exit(...,
  budget=B)``, and :func:`simulate_with_budget`, its decisions from all-exit logits.
"""

from adanet.inference.buckets import DEFAULT_BUCKETS, BucketSpec, SizeBuckets
from adanet.inference.budget import simulate_with_budget
from adanet.inference.engine import EarlyExitResult, early_exit, run_to_exit

__all__ = [
    "DEFAULT_BUCKETS",
    "BucketSpec",
    "EarlyExitResult",
    "SizeBuckets",
    "early_exit",
    "run_to_exit",
    "simulate_with_budget",
]
