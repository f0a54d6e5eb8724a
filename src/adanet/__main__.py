"""``python -m adanet``: the ``adanet`` command (see :mod:`adanet.cli`)."""

from __future__ import annotations

import sys

from adanet.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
