"""The error the command line reports as ``adanet: error: ...`` (exit status 2)."""

from __future__ import annotations

__all__ = ["CLIError"]


class CLIError(Exception):
    """A problem with the command line or its inputs; printed without a traceback."""
