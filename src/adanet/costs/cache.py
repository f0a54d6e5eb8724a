"""Per-exit costs measured once per model and input shape, for the functions that need them
when the caller gives none (:func:`adanet.early_exit`, the evaluations).

Costs follow the model's structure, which can change after they were measured:
``reset_classifier``, a head swapped by hand, a layer replaced. Measuring again on every call
would cost as much as the computation it accounts for, and fingerprinting every module on
every call is itself milliseconds on a RANet, so the cache keeps a *generation*: a counter
bumped by torch's global hooks whenever any module, parameter or buffer is assigned anywhere
(``module.head = nn.Linear(...)``, ``register_buffer``, ``ModuleList`` appends). While the
generation is unchanged the cached costs stand; once it moves, the model's structural
fingerprint (each module's type, configuration (``extra_repr``), parameter and buffer shapes)
is compared with the one the costs were measured on, and they are measured again only if it
differs.

Not seen: changes that assign none of these, such as setting ``conv.stride`` in place or
giving a parameter's ``.data`` another shape. After such a change call
:func:`forget_exit_costs`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.modules import module as module_hooks

from adanet.costs.counting import Convention, measure_exit_costs
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider, check_policy_fits

__all__ = ["exit_costs_for", "forget_exit_costs", "resolve_convention", "structure_fingerprint"]

_CONVENTIONS = ("actual", "reference")

# Bumped on every module, parameter or buffer assignment in the process.
_generation = [0]


def _bump(*_: object) -> None:
    _generation[0] += 1


module_hooks.register_module_module_registration_hook(_bump)
module_hooks.register_module_parameter_registration_hook(_bump)
module_hooks.register_module_buffer_registration_hook(_bump)


@dataclass
class _Entry:
    generation: int
    fingerprint: int
    costs: dict[tuple[object, ...], Tensor] = field(default_factory=dict)


_COST_CACHE: weakref.WeakKeyDictionary[EarlyExitNetwork, _Entry] = weakref.WeakKeyDictionary()


def structure_fingerprint(model: nn.Module) -> int:
    """A hash of what a module's costs depend on: every submodule's name, type,
    configuration (``extra_repr``: kernel sizes, strides, groups, ...) and the shapes of its
    own parameters and buffers."""
    return hash(
        tuple(
            (
                name,
                type(module).__qualname__,
                module.extra_repr(),
                tuple((k, tuple(p.shape)) for k, p in module._parameters.items() if p is not None),
                tuple((k, tuple(b.shape)) for k, b in module._buffers.items() if b is not None),
            )
            for name, module in model.named_modules()
        )
    )


def forget_exit_costs(model: EarlyExitNetwork) -> None:
    """Drop the costs cached for ``model``: they are measured again when next needed.

    Needed only after a change the cache cannot see (see the module docs).
    """
    _COST_CACHE.pop(model, None)


def _entry(model: EarlyExitNetwork) -> _Entry:
    entry = _COST_CACHE.get(model)
    generation = _generation[0]
    if entry is not None and entry.generation == generation:
        return entry
    fingerprint = structure_fingerprint(model)
    if entry is None or entry.fingerprint != fingerprint:
        entry = _Entry(generation, fingerprint)
        _COST_CACHE[model] = entry
    entry.generation = generation
    return entry


def exit_costs_for(
    model: EarlyExitNetwork, image_shape: Sequence[int], convention: Convention = "actual"
) -> Tensor:
    """Per-exit cumulative costs of ``model`` for images of ``image_shape`` ``(C, H, W)``,
    measured once per structure of the model (see the module docs), as a float64 CPU tensor.

    Costs the network knows itself (:meth:`~adanet.EarlyExitNetwork.known_exit_costs`) are
    asked for on every call, never cached.
    """
    key = (tuple(int(v) for v in image_shape), convention)
    known = model.known_exit_costs(key[0], convention)
    if known is not None:
        return torch.tensor([float(v) for v in known], dtype=torch.float64)
    cache = _entry(model).costs
    cached = cache.get(key)
    if cached is None or cached.numel() != model.num_exits:
        macs = [c.macs for c in measure_exit_costs(model, key[0], convention=convention)]
        cached = cache[key] = torch.tensor(macs, dtype=torch.float64)
    return cached


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
