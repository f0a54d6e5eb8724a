"""Rebuilding any of adanet's own policies from its JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["policy_from_dict"]


def policy_from_dict(d: Mapping[str, Any]) -> EarlyExitPolicy | PatienceExitPolicy:
    """The policy a ``to_dict()`` came from: patience if ``d["measure"] == "patience"``, else
    thresholds.

    Raises:
        ValueError: If ``d`` is not a policy mapping.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"expected a policy mapping, got {type(d).__name__}")
    if d.get("measure") == "patience":
        return PatienceExitPolicy.from_dict(d)
    return EarlyExitPolicy.from_dict(d)
