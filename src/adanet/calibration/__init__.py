"""Calibrating exit policies on held-out logits.

Every entry point takes the logits first and shares the keyword-only names ``measure``,
``temperatures``, ``cost_convention`` and ``input_size``:

* :func:`calibrate_shares`: thresholds that send a share of the samples out at each exit
  (the original RANet/MSDNet greedy rule), with :func:`geometric_exit_fractions`.
* :func:`calibrate_for_cost`: the geometric family searched for a mean cost per sample.
* :func:`calibrate_risk`: the cheapest shared threshold whose accuracy drop against the
  labels or the last exit is at most ``eps``, with a Learn-then-Test or conformal guarantee.
* :func:`fit_temperatures`: per-exit temperature scaling.
* :func:`budgeted_sweep`: the budgeted batch classification protocol over many budgets.
* :class:`OnlineController`: a policy that keeps re-tuning itself on the stream it serves, to
  hold a mean cost or an accuracy drop when the stream shifts (:mod:`adanet.calibration.online`).
"""

from adanet.calibration.budgeted import DEFAULT_PS, BudgetRecord, budgeted_sweep
from adanet.calibration.online import OnlineController
from adanet.calibration.risk import calibrate_risk
from adanet.calibration.shares import (
    calibrate_for_cost,
    calibrate_shares,
    geometric_exit_fractions,
)
from adanet.calibration.temperature import expected_calibration_error, fit_temperatures

__all__ = [
    "DEFAULT_PS",
    "BudgetRecord",
    "OnlineController",
    "budgeted_sweep",
    "calibrate_for_cost",
    "calibrate_risk",
    "calibrate_shares",
    "expected_calibration_error",
    "fit_temperatures",
    "geometric_exit_fractions",
]
