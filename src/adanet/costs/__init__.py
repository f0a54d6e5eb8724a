"""What a sample leaving at each exit has paid, in multiply-accumulates and parameters.

* :func:`measure_exit_costs`: the cumulative cost of every exit for one image, in adanet's
  ``"actual"`` convention (everything that runs) or the originals' ``"reference"`` one (their
  ``op_counter.py``, rules in :mod:`adanet.costs.reference_rules`).
* :func:`exit_costs_for`: the same, measured once per model structure and input shape
  (measured again after ``reset_classifier``, a swapped head or any other module, parameter or
  buffer assignment); :func:`forget_exit_costs` for changes it cannot see.
"""

from adanet.costs.cache import exit_costs_for, forget_exit_costs, resolve_convention
from adanet.costs.counting import Convention, ExitCost, measure_exit_costs
from adanet.costs.reference_rules import reference_cost_rule, register_reference_cost_rule

__all__ = [
    "Convention",
    "ExitCost",
    "exit_costs_for",
    "forget_exit_costs",
    "measure_exit_costs",
    "reference_cost_rule",
    "register_reference_cost_rule",
    "resolve_convention",
]
