"""Deprecated: moved to :mod:`adanet.compat.args`; this module re-exports its names and will
be removed in the next release."""

from __future__ import annotations

import warnings

from .compat.args import REFERENCE_DATASETS, parse_dash_list, parse_reference_args

__all__ = ["REFERENCE_DATASETS", "parse_dash_list", "parse_reference_args"]

warnings.warn(
    "adanet.reference_args is deprecated: import from adanet.compat.args instead",
    DeprecationWarning,
    stacklevel=2,
)
