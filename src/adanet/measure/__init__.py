"""How fast and how well an early-exit network runs: wall time and accuracy (MACs are
:mod:`adanet.costs`).

* :func:`measure_exit_latency`: seconds per image to reach each exit on your device.
* :func:`evaluate_anytime`: every exit's accuracy over a loader.
* :func:`evaluate_policy`: a policy run for real over a loader, with throughput and latency.
"""

from adanet.measure.evaluation import (
    AnytimeEvaluation,
    AnytimeRecord,
    PolicyEvaluation,
    evaluate_anytime,
    evaluate_policy,
)
from adanet.measure.latency import LatencyStats, measure_exit_latency

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "LatencyStats",
    "PolicyEvaluation",
    "evaluate_anytime",
    "evaluate_policy",
    "measure_exit_latency",
]
