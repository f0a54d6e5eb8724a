"""The state an early-exit network carries between exits, and the one walker over it.

A state is any nesting of lists, tuples (named or not), dicts and dataclasses whose tensors
are batch-first; other values (ints, strings, ``None``) are carried along unchanged.
:func:`flatten_state` lists its distinct tensors and a :class:`StateSpec` that rebuilds it;
everything that handles states (compaction in :func:`select_samples`, the exported stages'
inputs and outputs) goes through that pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "StateSpec",
    "StateStructureError",
    "flatten_like",
    "flatten_state",
    "select_samples",
    "spec_size",
    "unflatten_state",
]

#: A nested description of a state: ``("tensor", position)``, ``("const", value)``,
#: ``("list" | "tuple", items)``, ``("namedtuple", type, items)``, ``("dict", pairs)`` or
#: ``("dataclass", instance, (name, spec) pairs)``.
StateSpec = tuple[Any, ...]

_INDEX_DTYPES = (torch.int64, torch.int32)


class StateStructureError(ValueError):
    """A state does not have the structure of the spec it is matched against."""


def _flatten(state: Any, tensors: list[Tensor], seen: dict[int, int]) -> StateSpec:
    if isinstance(state, Tensor):
        # A tensor that appears several times is listed once, so it is selected once.
        if id(state) not in seen:
            seen[id(state)] = len(tensors)
            tensors.append(state)
        return ("tensor", seen[id(state)])
    if isinstance(state, list):
        return ("list", tuple(_flatten(item, tensors, seen) for item in state))
    if isinstance(state, tuple):
        items = tuple(_flatten(item, tensors, seen) for item in state)
        return ("namedtuple", type(state), items) if hasattr(state, "_fields") else ("tuple", items)
    if isinstance(state, dict):
        return (
            "dict",
            tuple((key, _flatten(value, tensors, seen)) for key, value in state.items()),
        )
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        fields = tuple(
            (field.name, _flatten(getattr(state, field.name), tensors, seen))
            for field in dataclasses.fields(state)
            if field.init
        )
        return ("dataclass", state, fields)
    return ("const", state)


def flatten_state(state: Any) -> tuple[list[Tensor], StateSpec]:
    """The distinct tensors of ``state`` in a fixed order, and the spec that rebuilds it."""
    tensors: list[Tensor] = []
    spec = _flatten(state, tensors, {})
    return tensors, spec


def unflatten_state(spec: StateSpec, tensors: Sequence[Tensor]) -> Any:
    """Rebuild a state from :func:`flatten_state`'s spec and (possibly other) tensors."""
    kind = spec[0]
    if kind == "tensor":
        return tensors[spec[1]]
    if kind == "const":
        return spec[1]
    if kind == "list":
        return [unflatten_state(item, tensors) for item in spec[1]]
    if kind == "tuple":
        return tuple(unflatten_state(item, tensors) for item in spec[1])
    if kind == "namedtuple":
        return spec[1](*(unflatten_state(item, tensors) for item in spec[2]))
    if kind == "dict":
        return {key: unflatten_state(value, tensors) for key, value in spec[1]}
    if kind == "dataclass":
        changes = {name: unflatten_state(value, tensors) for name, value in spec[2]}
        return dataclasses.replace(spec[1], **changes)
    raise AssertionError(f"unknown state spec {kind!r}")  # pragma: no cover


def flatten_like(spec: StateSpec, state: Any, out: list[Tensor | None]) -> None:
    """Put the tensors of ``state`` at the positions ``spec`` (of another state) gives them.

    Raises:
        StateStructureError: ``state`` is not nested like the state ``spec`` describes.
    """
    kind = spec[0]
    if kind == "tensor":
        if not isinstance(state, Tensor):
            raise StateStructureError(f"expected a tensor, got {type(state).__name__}")
        if out[spec[1]] is None:
            out[spec[1]] = state
    elif kind in ("list", "tuple", "namedtuple"):
        items = spec[1] if kind != "namedtuple" else spec[2]
        if not isinstance(state, list | tuple) or len(state) != len(items):
            raise StateStructureError(f"expected a sequence of {len(items)} items")
        for item_spec, item in zip(items, state, strict=True):
            flatten_like(item_spec, item, out)
    elif kind == "dict":
        if not isinstance(state, dict) or [k for k, _ in spec[1]] != list(state):
            raise StateStructureError(f"expected a dict with keys {[k for k, _ in spec[1]]}")
        for key, value_spec in spec[1]:
            flatten_like(value_spec, state[key], out)
    elif kind == "dataclass":
        if type(state) is not type(spec[1]):
            raise StateStructureError(
                f"expected a {type(spec[1]).__name__} dataclass, got {type(state).__name__}"
            )
        for name, value_spec in spec[2]:
            flatten_like(value_spec, getattr(state, name), out)


def spec_size(spec: StateSpec) -> int:
    """How many distinct tensors the state described by ``spec`` holds."""
    kind = spec[0]
    if kind == "tensor":
        return int(spec[1]) + 1
    if kind == "const":
        return 0
    if kind == "dict":
        children = [value for _, value in spec[1]]
    elif kind == "dataclass":
        children = [value for _, value in spec[2]]
    else:
        children = list(spec[2] if kind == "namedtuple" else spec[1])
    return max((spec_size(child) for child in children), default=0)


def select_samples(state: Any, index: Tensor) -> Any:
    """Keep the samples ``index`` (a 1-D int64 tensor) of every tensor in ``state``.

    Args:
        state: A nesting of lists, tuples, dicts and dataclasses with batch-first tensors.
        index: Positions of the samples to keep, on the tensors' device.

    Returns:
        A state of the same structure holding only those samples.

    Raises:
        TypeError: ``index`` is not a 1-D integer tensor.
    """
    if not isinstance(index, Tensor) or index.dim() != 1 or index.dtype not in _INDEX_DTYPES:
        shown = (
            f"a {index.dtype} tensor of shape {tuple(index.shape)}"
            if isinstance(index, Tensor)
            else type(index).__name__
        )
        raise TypeError(f"index must be a 1-D int64 (or int32) tensor of positions, got {shown}")
    tensors, spec = flatten_state(state)
    return unflatten_state(spec, [_select_rows(t, index) for t in tensors])


def _select_rows(tensor: Tensor, index: Tensor) -> Tensor:
    """``tensor.index_select(0, index)``, keeping a channels-last layout channels-last.

    ``index_select`` returns a contiguous (NCHW) tensor whatever its input's layout, so a
    compacted channels-last feature map would reach the next convolutions in the other
    layout (and a buffered dense block's 1×1 convolutions, which read channels-last prefixes
    in place, would fall back to copies). Gathering into a channels-last output keeps the
    layout, and is a plain row copy rather than a transposing one.
    """
    if (
        tensor.dim() == 4
        and not tensor.is_contiguous()
        and tensor.is_contiguous(memory_format=torch.channels_last)
    ):
        if torch.is_grad_enabled() and tensor.requires_grad:
            return tensor[index]  # advanced indexing keeps the layout and is differentiable
        shape = (index.shape[0], *tensor.shape[1:])
        out = torch.empty(
            shape, dtype=tensor.dtype, device=tensor.device, memory_format=torch.channels_last
        )
        return torch.index_select(tensor, 0, index, out=out)
    return tensor.index_select(0, index)
