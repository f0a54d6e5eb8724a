"""Printing from the command line: on rank 0 only, flushed."""

from __future__ import annotations

import sys

__all__ = ["Printer"]


class Printer:
    """Prints on rank 0 only, flushing so logs interleave sensibly with other output.

    Args:
        enabled: Whether this process prints.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, *parts: object, error: bool = False) -> None:
        """Print ``parts`` to stdout (to stderr with ``error=True``)."""
        if self.enabled:
            print(*parts, file=sys.stderr if error else sys.stdout, flush=True)
