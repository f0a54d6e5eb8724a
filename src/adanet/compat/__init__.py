"""Everything about the original RANet and MSDNet implementations' formats, in one place.

* :mod:`adanet.compat.args`: reading their ``args.txt``;
* :mod:`adanet.compat.ranet`, :mod:`adanet.compat.msdnet`: their option names and
  checkpoint parameter names;
* :mod:`adanet.compat.reference_costs`: their cost counter's rules;
* :mod:`adanet.compat.formats`: the explicit registry that says which format belongs to
  which adanet config and model (:func:`reference_format_for`).
"""

from .args import REFERENCE_DATASETS, parse_dash_list, parse_reference_args
from .formats import (
    ReferenceFormat,
    find_reference_format,
    reference_format_for,
    register_reference_format,
)
from .reference_costs import reference_cost_rule, register_reference_cost_rule

__all__ = [
    "REFERENCE_DATASETS",
    "ReferenceFormat",
    "find_reference_format",
    "parse_dash_list",
    "parse_reference_args",
    "reference_cost_rule",
    "reference_format_for",
    "register_reference_cost_rule",
    "register_reference_format",
]
