"""``ModelArgs``: how :func:`adanet.models.create_model` built a network, so it can be rebuilt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelArgs"]


@dataclass(frozen=True)
class ModelArgs:
    """How a network was built by :func:`create_model`: its registered name and arguments.

    Attributes:
        name: The registered name.
        arguments: The keyword arguments given to its entry point.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
