"""Exit policies: what decides, exit by exit, which samples leave.

* :class:`ExitDecider`: the protocol every policy follows (``num_exits``, ``initial_state``,
  ``step``, ``simulate``); anything with these members runs through
  :func:`adanet.early_exit`, :func:`adanet.evaluate_policy` and :func:`adanet.budgeted_sweep`.
* :class:`EarlyExitPolicy`: per-exit thresholds on a confidence measure (:data:`MEASURES`),
  optionally after per-exit temperatures.
* :class:`PatienceExitPolicy`: leave once ``k`` consecutive exits agree.
* :func:`policy_from_dict`: any of adanet's policies from its JSON form.

Calibrating a policy on held-out logits is :mod:`adanet.calibration`'s business.
"""

from adanet.policies.confidence import MEASURES, exit_confidences
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.protocol import ExitDecider, LogitsInput
from adanet.policies.serialization import policy_from_dict
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "MEASURES",
    "EarlyExitPolicy",
    "ExitDecider",
    "LogitsInput",
    "PatienceExitPolicy",
    "exit_confidences",
    "policy_from_dict",
]
