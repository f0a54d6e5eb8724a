"""The online controller's validated settings, its JSON form, and the results it observes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from adanet._validation import check_costs, require_fraction, require_int, require_real
from adanet.calibration.online.audit import AuditLedger
from adanet.calibration.online.family import DisagreementMap, ThresholdFamily
from adanet.policies.confidence import check_measure
from adanet.policies.fields import (
    check_context,
    check_keys,
    check_temperatures,
    normalise_input_size,
)

__all__ = ["ControllerConfig", "check_result", "from_dict_parts"]

#: Audit share used in accuracy mode when none is given.
DEFAULT_AUDIT_SHARE = 0.05


#: The keys of an ``OnlineController.to_dict()`` mapping, its learned state and its ledger.
_PART_KEYS = ("format", "config", "family", "map", "state")
_STATE_KEYS = ("command", "pending_sum", "pending_count", "seen", "cost_sum", "ledger")
_LEDGER_KEYS = tuple(f.name for f in fields(AuditLedger))


def _count(name: str, value: object) -> int:
    require_int(name, value, 0)
    return int(value)  # type: ignore[call-overload,no-any-return]


def _amount(name: str, value: object) -> float:
    number = require_real(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class ControllerConfig:
    """What an online controller holds fixed.

    Attributes:
        costs: Cumulative cost of each exit.
        axis: ``"cost"`` (cost mode) or ``"drop"`` (accuracy mode).
        target: The mean cost, or the disagreement ``eps``, to hold.
        audit_share: Share of images audited.
        measure: Confidence measure.
        temperatures: Per-exit temperatures, or ``None``.
        update_every: Images between two moves of the command.
        gain: Integral gain per move.
        seed: Offset of the audit sequence.
        num_classes: Classes of the calibration logits.
        cost_convention: Recorded convention of ``costs``.
        input_size: Recorded ``(H, W)`` of ``costs``.
    """

    costs: tuple[float, ...]
    axis: str
    target: float
    audit_share: float
    measure: str
    temperatures: tuple[float, ...] | None
    update_every: int
    gain: float
    seed: int
    num_classes: int
    cost_convention: str | None
    input_size: tuple[int, int] | None

    @classmethod
    def build(
        cls,
        *,
        costs: Sequence[float],
        target_cost: object,
        max_accuracy_drop: object,
        audit_share: object,
        measure: str,
        temperatures: tuple[float, ...] | None,
        update_every: object,
        gain: object,
        seed: object,
        num_classes: int,
        cost_convention: str | None,
        input_size: tuple[int, int] | None,
    ) -> ControllerConfig:
        """Validates the constructor's arguments.

        Raises:
            TypeError: Arguments of the wrong type.
            ValueError: Not exactly one target, or a value out of range.
        """
        if (target_cost is None) == (max_accuracy_drop is None):
            raise ValueError(
                "give exactly one of target_cost (cost mode) and max_accuracy_drop (accuracy "
                f"mode), got target_cost={target_cost!r}, max_accuracy_drop={max_accuracy_drop!r}"
            )
        if len(costs) < 2:
            raise ValueError(
                f"an online controller steers 2 or more exits, got costs for {len(costs)}"
            )
        if target_cost is not None:
            axis, target = "cost", require_real("target_cost", target_cost)
            if target < costs[0]:
                raise ValueError(
                    f"target_cost {target!r} is below costs[0] = {costs[0]!r}, the cost of "
                    "leaving at the first exit, so no policy can meet it"
                )
        else:
            require_fraction(
                "max_accuracy_drop",
                max_accuracy_drop,
                low=0.0,
                high=1.0,
                low_inclusive=False,
                high_inclusive=False,
            )
            axis, target = "drop", float(max_accuracy_drop)  # type: ignore[arg-type]
        if audit_share is None:
            audit_share = DEFAULT_AUDIT_SHARE if axis == "drop" else 0.0
        require_fraction(
            "audit_share", audit_share, low=0.0, high=1.0, low_inclusive=True, high_inclusive=False
        )
        require_int("update_every", update_every, 1)
        require_fraction("gain", gain, low=0.0, high=2.0, low_inclusive=False, high_inclusive=False)
        require_int("seed", seed, 0)
        check_context(num_classes, cost_convention)
        return cls(
            costs=tuple(costs),
            axis=axis,
            target=target,
            audit_share=float(audit_share),  # type: ignore[arg-type]
            measure=measure,
            temperatures=temperatures,
            update_every=int(update_every),  # type: ignore[call-overload]
            gain=float(gain),  # type: ignore[arg-type]
            seed=int(seed),  # type: ignore[call-overload]
            num_classes=num_classes,
            cost_convention=cost_convention,
            input_size=input_size,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out = asdict(self)
        for key in ("costs", "temperatures", "input_size"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControllerConfig:
        """Inverse of :meth:`to_dict`, validated as the constructor validates.

        Raises:
            ValueError: A malformed mapping.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"a controller config must be a mapping, got {type(d).__name__}")
        check_keys(d, [f.name for f in fields(cls)], "controller config")
        try:
            costs = check_costs(d["costs"], len(d["costs"]))
            require_int("num_classes", d["num_classes"], 1)
            axis = d["axis"]
            if axis not in ("cost", "drop"):
                raise ValueError(f"axis must be 'cost' or 'drop', got {axis!r}")
            return cls.build(
                costs=costs,
                target_cost=d["target"] if axis == "cost" else None,
                max_accuracy_drop=d["target"] if axis == "drop" else None,
                audit_share=d["audit_share"],
                measure=check_measure(d["measure"]),
                temperatures=check_temperatures(d.get("temperatures"), len(costs)),
                update_every=d["update_every"],
                gain=d["gain"],
                seed=d["seed"],
                num_classes=d["num_classes"],
                cost_convention=d.get("cost_convention"),
                input_size=normalise_input_size(d.get("input_size")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed controller config: {error!r}") from None


def from_dict_parts(
    d: Mapping[str, Any],
) -> tuple[ControllerConfig, ThresholdFamily, DisagreementMap, dict[str, Any]]:
    """The validated parts of an ``OnlineController.to_dict()`` mapping.

    Raises:
        ValueError: A missing or malformed part, or a non-finite learned value.
    """
    try:
        check_keys(d, _PART_KEYS, "controller")
        config = ControllerConfig.from_dict(d["config"])
        num_exits = len(config.costs)
        family = ThresholdFamily.from_dict(d["family"], num_exits)
        drop_map = DisagreementMap.from_dict(d["map"], num_exits)
        raw = d["state"]
        check_keys(raw, _STATE_KEYS, "controller state")
        ledger = raw["ledger"]
        check_keys(ledger, _LEDGER_KEYS, "controller ledger")
        state: dict[str, Any] = {
            "command": require_real("state.command", raw["command"]),
            "pending_sum": _amount("state.pending_sum", raw["pending_sum"]),
            "pending_count": _count("state.pending_count", raw["pending_count"]),
            "seen": _count("state.seen", raw["seen"]),
            "cost_sum": _amount("state.cost_sum", raw["cost_sum"]),
            "ledger": {
                "audits": _count("ledger.audits", ledger["audits"]),
                "disagreements": _count("ledger.disagreements", ledger["disagreements"]),
                "seen": _amount("ledger.seen", ledger["seen"]),
                "predicted": _amount("ledger.predicted", ledger["predicted"]),
            },
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"malformed controller mapping: {error!r}") from None
    if state["ledger"]["disagreements"] > state["ledger"]["audits"]:
        raise ValueError("ledger.disagreements cannot exceed ledger.audits")
    low, high = family.bounds(config.axis)
    if not low <= state["command"] <= high:
        raise ValueError(
            f"state.command {state['command']!r} lies outside [{low!r}, {high!r}], the range "
            f"of the family's {config.axis!r} axis"
        )
    return config, family, drop_map, state


def check_result(result: object, num_exits: int) -> tuple[Tensor, Tensor]:
    """``result.exit_index`` and ``result.logits`` of an early-exit result, checked.

    Raises:
        TypeError: ``result`` lacks them or they are not tensors.
        ValueError: Their shapes disagree or an exit is out of range.
    """
    exit_index = getattr(result, "exit_index", None)
    logits = getattr(result, "logits", None)
    if not isinstance(exit_index, Tensor) or not isinstance(logits, Tensor):
        raise TypeError(
            "observe() takes the EarlyExitResult of early_exit(model, x, controller), got "
            f"{type(result).__name__}"
        )
    if exit_index.ndim != 1 or logits.ndim != 2 or logits.shape[0] != exit_index.shape[0]:
        raise ValueError(
            f"result has exit_index {tuple(exit_index.shape)} and logits {tuple(logits.shape)}; "
            "expected [N] and [N, classes]"
        )
    if exit_index.is_floating_point() or exit_index.dtype == torch.bool:
        raise ValueError(f"result.exit_index must hold integers, got {exit_index.dtype}")
    if exit_index.numel() and (int(exit_index.min()) < 0 or int(exit_index.max()) >= num_exits):
        raise ValueError(f"result.exit_index holds exits outside [0, {num_exits})")
    return exit_index, logits
