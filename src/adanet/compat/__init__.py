"""Everything about the original RANet and MSDNet implementations' files, in one place.

* :func:`read_reference_config`: the adanet config of an original run's ``args.txt``.
* :func:`load_reference_checkpoint`: an original checkpoint's weights into an adanet model.
* :mod:`adanet.compat.args`: reading their ``args.txt``;
* :mod:`adanet.compat.ranet`, :mod:`adanet.compat.msdnet`: their option names and
  checkpoint parameter names;
* :mod:`adanet.compat.budgeted_protocol`: their budgeted protocol's float32 arithmetic;
* :mod:`adanet.compat.formats`: the explicit registry that says which format belongs to
  which adanet architecture (:func:`reference_format_for`).
"""

from adanet._safe_load import CheckpointError
from adanet.compat.args import REFERENCE_DATASETS, parse_dash_list, parse_reference_args
from adanet.compat.checkpoints import load_reference_checkpoint
from adanet.compat.formats import (
    ReferenceFormat,
    find_reference_format,
    read_reference_config,
    reference_format_for,
    register_reference_format,
)

__all__ = [
    "REFERENCE_DATASETS",
    "CheckpointError",
    "ReferenceFormat",
    "find_reference_format",
    "load_reference_checkpoint",
    "parse_dash_list",
    "parse_reference_args",
    "read_reference_config",
    "reference_format_for",
    "register_reference_format",
]
