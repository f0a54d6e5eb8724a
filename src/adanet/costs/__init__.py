"""What a sample leaving at each exit has paid, in multiply-accumulates and parameters.

* :func:`measure_exit_costs`: the cumulative cost of every exit for one image, in adanet's
  ``"actual"`` convention (everything that runs) or the originals' ``"reference"`` one (their
  ``op_counter.py``, rules in :mod:`adanet.costs.reference_rules`).
* :func:`exit_costs_for`: the same, measured once per model and input shape.
"""

from adanet.costs.cache import exit_costs_for, resolve_convention
from adanet.costs.counting import Convention, ExitCost, measure_exit_costs
from adanet.costs.reference_rules import reference_cost_rule, register_reference_cost_rule

__all__ = [
    "Convention",
    "ExitCost",
    "exit_costs_for",
    "measure_exit_costs",
    "reference_cost_rule",
    "register_reference_cost_rule",
    "resolve_convention",
]
