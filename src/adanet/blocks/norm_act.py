"""Normalisation and activation chosen by name: ``"batch"``, ``"group:8"``, ``"relu"``, ``"silu"``.

The configs hold a *spec* (a short string, or a factory) so that they stay JSON-friendly; the
blocks take *factories* (``norm_layer(channels)``, ``activation_layer(inplace=True)``, as
torchvision's ``Conv2dNormActivation``). :func:`resolve_norm` and :func:`resolve_act` turn a
spec into a factory and say clearly what is allowed when a spec is wrong.

Norm specs:

* ``"batch"``: ``nn.BatchNorm2d`` (the originals').
* ``"group:G"``: ``nn.GroupNorm`` with ``G`` groups. Where a layer's channel count is not a
  multiple of ``G`` (RANet's and MSDNet's widths grow by the growth rate, so many are not),
  that layer uses the largest divisor of its channels that is at most ``G``, so every
  layer builds.
* ``"layer"``: ``nn.GroupNorm(1, channels)``, layer norm over channels and space.
* a callable ``channels -> nn.Module``, such as ``nn.InstanceNorm2d``.

Activation specs: ``"relu"`` (the originals'), ``"silu"``, ``"gelu"``, ``"hardswish"``, or a
callable returning an ``nn.Module``; it is passed ``inplace=True`` when it accepts
``inplace``, and nothing otherwise.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from adanet._validation import is_int
from adanet.blocks._common import ActivationLayer, NormLayer

__all__ = [
    "ACT_NAMES",
    "NORM_NAMES",
    "ActSpec",
    "GroupNormFactory",
    "NormSpec",
    "check_act",
    "check_norm",
    "resolve_act",
    "resolve_norm",
]

#: A normalisation spec: a name (see the module docs) or a ``channels -> nn.Module`` factory.
NormSpec = str | Callable[[int], nn.Module]
#: An activation spec: a name (see the module docs) or a factory returning an ``nn.Module``.
ActSpec = str | Callable[..., nn.Module]

#: The accepted norm names (``"group:G"`` takes any G >= 1).
NORM_NAMES = ("batch", "group:G", "layer")
#: The accepted activation names.
ACT_NAMES = ("relu", "silu", "gelu", "hardswish")

_GROUP = re.compile(r"^group:(\d+)$")


class GroupNormFactory:
    """Builds ``nn.GroupNorm`` with ``groups`` groups, or the largest divisor of the channel
    count that is at most ``groups`` where ``groups`` does not divide it.

    Args:
        groups: Groups wanted (>= 1).
    """

    def __init__(self, groups: int) -> None:
        if not is_int(groups) or groups < 1:
            raise ValueError(f"GroupNorm needs an int number of groups >= 1, got {groups!r}")
        self.groups = groups

    def __call__(self, channels: int) -> nn.GroupNorm:
        groups = max(g for g in range(1, min(self.groups, channels) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)

    def __repr__(self) -> str:
        return f"GroupNormFactory({self.groups})"


class _NoInplace:
    # Wraps an activation factory that takes no ``inplace`` argument (nn.GELU, a user's
    # lambda), so that the blocks can always call ``factory(inplace=True)``.
    def __init__(self, factory: Callable[..., nn.Module]) -> None:
        self.factory = factory

    def __call__(self, inplace: bool = False) -> nn.Module:
        return self.factory()

    def __repr__(self) -> str:
        return f"{getattr(self.factory, '__name__', self.factory)!r}"


class _CheckedFactory:
    """A user's norm or activation callable, whose every result is checked to be an
    ``nn.Module``: a factory returning something else (a tensor, a function, ``None``) fails
    here, naming the spec, rather than deep inside torch's module registration."""

    def __init__(self, factory: Callable[..., Any], kind: str) -> None:
        self.factory = factory
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        made = self.factory(*args, **kwargs)
        if not isinstance(made, nn.Module):
            raise TypeError(
                f"the {self.kind} callable {self.factory!r} returned a {type(made).__name__}, "
                "not an nn.Module; it must build a layer (e.g. nn.InstanceNorm2d, nn.ReLU)"
            )
        return made

    def __repr__(self) -> str:
        return repr(self.factory)


def _is_module_class(spec: object) -> bool:
    return isinstance(spec, type) and issubclass(spec, nn.Module)


def _norm_message(spec: object) -> str:
    return (
        "norm must be 'batch', 'group:G' (G >= 1 groups), 'layer', or a callable taking a "
        f"channel count and returning an nn.Module; got {spec!r}"
    )


def resolve_norm(spec: NormSpec) -> NormLayer:
    """The normalisation factory a spec names.

    Raises:
        ValueError: An unknown name, or ``"group:0"``.
        TypeError: Neither a string nor a callable.
    """
    if isinstance(spec, str):
        if spec == "batch":
            return nn.BatchNorm2d
        if spec == "layer":
            return GroupNormFactory(1)
        match = _GROUP.match(spec)
        if match and int(match.group(1)) >= 1:
            return GroupNormFactory(int(match.group(1)))
        raise ValueError(_norm_message(spec))
    if callable(spec):
        return spec if _is_module_class(spec) else _CheckedFactory(spec, "norm")
    raise TypeError(_norm_message(spec))


def _act_message(spec: object) -> str:
    names = ", ".join(repr(name) for name in ACT_NAMES)
    return f"act must be one of {names}, or a callable returning an nn.Module; got {spec!r}"


def _accepts_inplace(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    # Only a named parameter counts: nn.Module subclasses without an __init__ of their own
    # (nn.Tanh) show Module's **kwargs but refuse any keyword.
    return "inplace" in parameters


def resolve_act(spec: ActSpec) -> ActivationLayer:
    """The activation factory a spec names; it can always be called with ``inplace=True``.

    Raises:
        ValueError: An unknown name.
        TypeError: Neither a string nor a callable.
    """
    if isinstance(spec, str):
        table: dict[str, ActivationLayer] = {
            "relu": nn.ReLU,
            "silu": nn.SiLU,
            "gelu": _NoInplace(nn.GELU),
            "hardswish": nn.Hardswish,
        }
        if spec not in table:
            raise ValueError(_act_message(spec))
        return table[spec]
    if callable(spec):
        factory = spec if _is_module_class(spec) else _CheckedFactory(spec, "act")
        return factory if _accepts_inplace(spec) else _NoInplace(factory)
    raise TypeError(_act_message(spec))


def check_norm(spec: object) -> None:
    """Raise the error :func:`resolve_norm` would raise for ``spec``, if any."""
    resolve_norm(spec)  # type: ignore[arg-type]


def check_act(spec: object) -> None:
    """Raise the error :func:`resolve_act` would raise for ``spec``, if any."""
    resolve_act(spec)  # type: ignore[arg-type]
