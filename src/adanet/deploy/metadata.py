"""The one validator of what travels with a deployed model, run at save, export and load.

A model directory's ``config.json`` and an ONNX export's ``manifest.json`` record the same
kinds of facts about a network: format versions, per-exit costs and the input size they were
measured at, preprocessing, and the calibrated policy with the context it was calibrated for.
Each fact is checked here, against the network it travels with, by :func:`adanet.save_pretrained`
and :func:`adanet.export_onnx` before the first byte is written and by
:func:`adanet.load_pretrained` before anything is built, so that a directory that saves is a
directory that loads, and a hand-edited one fails with an error naming the file and field.

It also bounds what a config may ask for before anything is allocated: the network is built
on PyTorch's ``meta`` device (no memory) under a guard that stops at :data:`MAX_MODULES`
modules or :data:`MAX_PARAMETERS` parameter elements, so a config asking for terabytes, or
for millions of layers, is refused in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules import module as module_hooks

from adanet._validation import check_costs, is_int
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.protocol import check_policy_fits
from adanet.policies.serialization import policy_from_dict
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "COST_CONVENTIONS",
    "MAX_JSON_BYTES",
    "MAX_MODULES",
    "MAX_PARAMETERS",
    "CostRecord",
    "ErrorFactory",
    "bounded_build",
    "check_cost_record",
    "check_policy",
    "check_policy_document",
    "check_policy_for",
    "check_preprocessing",
    "check_state_matches",
    "check_version",
    "finite_sequence",
    "head_classes",
    "parse_json",
    "require_keys",
    "state_bytes",
]

#: The most parameter (and buffer) elements a config may ask for: 2**31, 8 GiB of float32.
MAX_PARAMETERS = 2**31
#: The most modules a config may ask for (RANet and MSDNet on ImageNet have a few thousand).
MAX_MODULES = 200_000
#: The largest JSON document read (config, manifest, checksums).
MAX_JSON_BYTES = 16 * 2**20
#: The cost conventions a recorded cost may use.
COST_CONVENTIONS = ("actual", "reference")

#: Builds the exception to raise from a message (e.g. ``PretrainedError``).
ErrorFactory = Callable[[str], Exception]


class CostRecord(NamedTuple):
    """Recorded per-exit costs: the convention, ``(C, H, W)`` measured at, cumulative MACs."""

    convention: str
    input_size: tuple[int, int, int]
    macs: tuple[float, ...]


def parse_json(payload: bytes, where: str, error: ErrorFactory) -> Any:
    """Strict JSON: UTF-8, no ``NaN``/``Infinity`` constants, no key given twice.

    Raises:
        Exception: ``error(message)`` naming ``where``.
    """

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"the non-standard constant {name}")

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"the key(s) {repeated} given twice")
        return dict(pairs)

    try:
        return json.loads(
            payload.decode("utf-8"),
            parse_constant=refuse_constant,
            object_pairs_hook=refuse_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as failure:
        raise error(f"{where} is not valid JSON: {failure}") from None


def require_keys(
    value: Any,
    where: str,
    error: ErrorFactory,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> Mapping[str, Any]:
    """``value`` as a mapping holding every ``required`` key and no key outside both lists.

    Raises:
        Exception: ``error(message)`` naming ``where`` and the missing or unknown keys.
    """
    if not isinstance(value, Mapping):
        raise error(f"{where} must be a JSON object, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise error(f"{where} lacks {missing}")
    unknown = sorted(str(k) for k in value if k not in required and k not in optional)
    if unknown:
        allowed = [*required, *optional]
        raise error(f"{where} has unknown keys {unknown}; allowed: {allowed}")
    return value


def check_version(value: Any, supported: int, where: str, error: ErrorFactory) -> int:
    """A format version: an int from 1 to ``supported``.

    Raises:
        Exception: ``error(message)``; a newer version says to upgrade adanet.
    """
    if not is_int(value) or value < 1:
        raise error(f"{where}: format_version must be an int >= 1, got {value!r}")
    if value > supported:
        raise error(
            f"{where} was written in format version {value}, newer than this adanet reads (up "
            f"to {supported}); upgrade adanet to read it"
        )
    return int(value)


def _image_size(value: Any, channels: int, where: str, error: ErrorFactory) -> tuple[int, int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(is_int(v) and v >= 1 for v in value)
    ):
        raise error(f"{where} must be [C, H, W] with ints >= 1, got {value!r}")
    if value[0] != channels:
        raise error(f"{where} {list(value)} has {value[0]} channels; the model takes {channels}")
    return int(value[0]), int(value[1]), int(value[2])


def check_cost_record(
    value: Any, *, num_exits: int, channels: int, where: str, error: ErrorFactory
) -> CostRecord:
    """A ``costs`` record: ``{"convention", "input_size": [C, H, W], "macs": [...]}`` with one
    finite, non-negative, non-decreasing cost per exit.

    Raises:
        Exception: ``error(message)`` naming the field.
    """
    record = require_keys(value, where, error, required=("convention", "input_size", "macs"))
    convention = record["convention"]
    if convention not in COST_CONVENTIONS:
        raise error(f"{where}.convention must be one of {COST_CONVENTIONS}, got {convention!r}")
    size = _image_size(record["input_size"], channels, f"{where}.input_size", error)
    try:
        macs = check_costs(record["macs"], num_exits, name=f"{where}.macs")
    except (TypeError, ValueError) as failure:
        raise error(str(failure)) from None
    return CostRecord(str(convention), size, tuple(macs))


def check_preprocessing(
    value: Any, *, channels: int, where: str, error: ErrorFactory
) -> PretrainedCfg:
    """A preprocessing record (what :meth:`PretrainedCfg.to_dict` writes) for ``channels``.

    Raises:
        Exception: ``error(message)`` naming the field.
    """
    try:
        prep = value if isinstance(value, PretrainedCfg) else PretrainedCfg.from_dict(value)
    except (TypeError, ValueError) as failure:
        raise error(f"{where}: {failure}") from None
    if prep.input_size[0] != channels:
        raise error(
            f"{where} is for {prep.input_size[0]}-channel images; the model takes {channels}"
        )
    return prep


def check_policy(
    policy: Any,
    *,
    num_exits: int,
    num_classes: int | None,
    input_size: Sequence[int] | None,
    where: str,
    error: ErrorFactory,
) -> EarlyExitPolicy | PatienceExitPolicy:
    """A policy object that fits the network: its exits, and the classes and input size it
    was calibrated for where it records them.

    Raises:
        TypeError: Not an EarlyExitPolicy or PatienceExitPolicy (only those serialise).
        Exception: ``error(message)`` naming what differs.
    """
    if not isinstance(policy, EarlyExitPolicy | PatienceExitPolicy):
        raise TypeError(
            "policy must be an EarlyExitPolicy or PatienceExitPolicy (saved as JSON), got "
            f"{type(policy).__name__}"
        )
    try:
        check_policy_fits(
            policy, num_exits=num_exits, num_classes=num_classes, input_size=input_size
        )
    except ValueError as failure:
        raise error(f"{where}: {failure}") from None
    return policy


def check_policy_for(
    model: nn.Module, policy: Any, input_size: Sequence[int] | None
) -> EarlyExitPolicy | PatienceExitPolicy:
    """:func:`check_policy` against ``model``'s exits and head classes, for the images of
    ``input_size`` it is saved or exported for; a mismatch is a ``ValueError``."""
    return check_policy(
        policy,
        num_exits=len(getattr(model, "exits", ())),
        num_classes=head_classes(model),
        input_size=input_size,
        where="policy",
        error=ValueError,
    )


def check_policy_document(
    value: Any,
    *,
    num_exits: int,
    num_classes: int | None,
    input_size: Sequence[int] | None,
    where: str,
    error: ErrorFactory,
) -> EarlyExitPolicy | PatienceExitPolicy:
    """:func:`check_policy` for a policy's JSON form (``to_dict``).

    Raises:
        Exception: ``error(message)`` naming the field.
    """
    try:
        policy = policy_from_dict(value)
    except (TypeError, ValueError) as failure:
        raise error(f"{where}: {failure}") from None
    return check_policy(
        policy,
        num_exits=num_exits,
        num_classes=num_classes,
        input_size=input_size,
        where=where,
        error=error,
    )


def head_classes(model: nn.Module) -> int | None:
    """The classes every exit predicts, read from the last ``nn.Linear`` of each head; ``None``
    where a head has none or the heads disagree (then nothing is compared)."""
    heads = getattr(model, "exits", None)
    if not isinstance(heads, nn.ModuleList) or len(heads) == 0:
        return None
    found: set[int] = set()
    for head in heads:
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if not linears:
            return None
        found.add(int(linears[-1].out_features))
    return found.pop() if len(found) == 1 else None


class _TooLarge(Exception):
    pass


@contextmanager
def _size_guard(max_modules: int, max_parameters: int) -> Iterator[None]:
    counts = [0, 0]

    def on_module(*_: Any) -> None:
        counts[0] += 1
        if counts[0] > max_modules:
            raise _TooLarge(f"more than {max_modules} modules")

    def on_tensor(_module: Any, _name: str, tensor: Any) -> None:
        if isinstance(tensor, Tensor):
            counts[1] += tensor.numel()
        if counts[1] > max_parameters:
            raise _TooLarge(f"more than {max_parameters} parameter and buffer elements")

    handles = [
        module_hooks.register_module_module_registration_hook(on_module),
        module_hooks.register_module_parameter_registration_hook(on_tensor),
        module_hooks.register_module_buffer_registration_hook(on_tensor),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def bounded_build(
    build: Callable[[], EarlyExitNetwork],
    where: str,
    error: ErrorFactory,
    *,
    max_modules: int = MAX_MODULES,
    max_parameters: int = MAX_PARAMETERS,
) -> EarlyExitNetwork:
    """``build()`` on the ``meta`` device, stopped as soon as it exceeds the bounds.

    The result holds no memory; its state dict gives the names, shapes and dtypes the real
    network will have, and its size what building it would allocate.

    Raises:
        Exception: ``error(message)`` when the bounds are exceeded, or the build raises a
            TypeError or ValueError (an invalid config).
    """
    try:
        with torch.device("meta"), _size_guard(max_modules, max_parameters):
            return build()
    except _TooLarge as failure:
        raise error(
            f"{where} asks for a network with {failure}, beyond what adanet loads "
            f"(at most {max_modules} modules and {max_parameters} parameter elements); "
            "refusing to build it"
        ) from None
    except (TypeError, ValueError) as failure:
        raise error(f"{where}: cannot build the network it describes: {failure}") from None


def state_bytes(state: Mapping[str, Tensor]) -> int:
    """Bytes the tensors of ``state`` take (meta tensors included)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def check_state_matches(
    expected: Mapping[str, Tensor], state: Mapping[str, Tensor], where: str, error: ErrorFactory
) -> None:
    """Every tensor of ``state`` has the name, shape and dtype the network expects.

    Checked before loading: ``load_state_dict`` would silently cast an int64 tensor into a
    float parameter.

    Raises:
        Exception: ``error(message)`` naming the first tensors that differ.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise error(
            f"the weights in {where} do not fit the config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for name, want in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise error(
                f"the weights in {where} do not fit the config: {name!r} is "
                f"{got.dtype} {list(got.shape)}, the network needs {want.dtype} "
                f"{list(want.shape)}"
            )


def finite_sequence(values: Any, count: int, name: str, error: ErrorFactory) -> list[float]:
    """``count`` finite, non-negative, non-decreasing numbers (a cumulative measure such as a
    latency).

    Raises:
        Exception: ``error(message)`` naming ``name``.
    """
    try:
        return check_costs(values, count, name=name)
    except (TypeError, ValueError) as failure:
        raise error(str(failure)) from None
