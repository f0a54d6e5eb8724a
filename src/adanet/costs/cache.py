"""Per-exit costs measured once per model and input shape, for the functions that need them
when the caller gives none (:func:`adanet.early_exit`, the evaluations)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

from adanet.costs.counting import Convention, measure_exit_costs
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider, check_policy_fits

__all__ = ["exit_costs_for", "resolve_convention"]

_CONVENTIONS = ("actual", "reference")

_COST_CACHE: weakref.WeakKeyDictionary[EarlyExitNetwork, dict[tuple[object, ...], Tensor]] = (
    weakref.WeakKeyDictionary()
)


def exit_costs_for(
    model: EarlyExitNetwork, image_shape: Sequence[int], convention: Convention = "actual"
) -> Tensor:
    """Per-exit cumulative costs of ``model`` for images of ``image_shape`` ``(C, H, W)``,
    measured once and cached per model (as a float64 CPU tensor)."""
    key = (tuple(int(v) for v in image_shape), convention)
    cache = _COST_CACHE.setdefault(model, {})
    if key not in cache:
        known = model.known_exit_costs(key[0], convention)
        macs = (
            [c.macs for c in measure_exit_costs(model, key[0], convention=convention)]
            if known is None
            else [float(v) for v in known]
        )
        cache[key] = torch.tensor(macs, dtype=torch.float64)
    return cache[key]


def resolve_convention(policy: ExitDecider, convention: Convention | None) -> Convention:
    """The cost convention to measure with: the given one, else the policy's, else "actual".

    Raises:
        ValueError: If ``convention`` is not a known convention, or differs from the one the
            policy records.
    """
    recorded = getattr(policy, "cost_convention", None)
    if convention is None:
        return "reference" if recorded == "reference" else "actual"
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")
    check_policy_fits(policy, num_exits=policy.num_exits, cost_convention=convention)
    return convention
