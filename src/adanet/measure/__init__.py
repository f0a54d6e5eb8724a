"""How fast and how well an early-exit network runs: wall time and accuracy (MACs are
:mod:`adanet.costs`).

* :func:`measure_exit_latency`: seconds per image to reach each exit on your device.
* :func:`evaluate_anytime`: every exit's accuracy over a loader.
* :func:`evaluate_policy`: a policy run for real over a loader, with throughput and latency.
* :func:`evaluate_stream`: methods side by side on a stream that shifts (:func:`shifted_stream`),
  per window of images: a static policy, an online controller, a per-batch budget.
"""

from adanet.measure.evaluation import (
    AnytimeEvaluation,
    AnytimeRecord,
    PolicyEvaluation,
    evaluate_anytime,
    evaluate_policy,
)
from adanet.measure.latency import LatencyStats, measure_exit_latency
from adanet.measure.stream import (
    PerBatchBudget,
    StreamEvaluation,
    StreamOrder,
    StreamRun,
    StreamWindow,
    evaluate_stream,
    shifted_stream,
)

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "LatencyStats",
    "PerBatchBudget",
    "PolicyEvaluation",
    "StreamEvaluation",
    "StreamOrder",
    "StreamRun",
    "StreamWindow",
    "evaluate_anytime",
    "evaluate_policy",
    "evaluate_stream",
    "measure_exit_latency",
    "shifted_stream",
]
