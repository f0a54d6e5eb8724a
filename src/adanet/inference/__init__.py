"""Running a network exit by exit: real batched early exit and the static baselines.

* :func:`early_exit`: every sample leaves at the first exit its policy lets it; the samples
  that remain go on, padded to a bounded set of sub-batch sizes (:class:`SizeBuckets`).
* :class:`EarlyExitResult`: each sample's logits, exit and cost.
* :func:`run_to_exit`: the static network truncated at one exit, computing no other head.
"""

from adanet.inference.buckets import DEFAULT_BUCKETS, BucketSpec, SizeBuckets
from adanet.inference.engine import EarlyExitResult, early_exit, run_to_exit

__all__ = [
    "DEFAULT_BUCKETS",
    "BucketSpec",
    "EarlyExitResult",
    "SizeBuckets",
    "early_exit",
    "run_to_exit",
]
