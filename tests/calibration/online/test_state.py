"""Tests for adanet.calibration.online.state: the online controller's fixed settings
(:class:`ControllerConfig`), built from the constructor's arguments and carried through JSON by
``to_dict`` / ``from_dict`` with every field checked again on the way back in (NaN, bools where
numbers belong, wrong types, out-of-range values and missing keys all give a ``ValueError``
naming the field); :func:`from_dict_parts`, which splits a whole controller mapping into its
validated config, threshold family, disagreement map and learned state; and
:func:`check_result`, which checks the early-exit result handed to ``observe``."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from adanet.calibration.online import CEILING, DisagreementMap, ThresholdFamily
from adanet.calibration.online.state import (
    DEFAULT_AUDIT_SHARE,
    ControllerConfig,
    check_result,
    from_dict_parts,
)
from controller_configs import cost_mode


def through_json(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` after a trip through strict JSON text."""
    loaded: dict[str, Any] = json.loads(json.dumps(d, allow_nan=False))
    return loaded


def controller_mapping() -> dict[str, Any]:
    """A hand-made ``OnlineController.to_dict()`` mapping for :func:`build`'s config."""
    family = ThresholdFamily(
        thresholds=((0.0, CEILING), (0.6, 0.4), (CEILING, CEILING)),
        cost=(1.0, 2.0, 4.0),
        drop=(0.5, 0.2, 0.0),
    )
    drop_map = DisagreementMap(edges=((0.5,), (0.5,)), values=((0.8, 0.2), (0.4, 0.1)))
    state = {
        "command": 2.25,
        "pending_sum": 6.0,
        "pending_count": 3,
        "seen": 40,
        "cost_sum": 95.0,
        "ledger": {"audits": 2, "disagreements": 1, "seen": 1.0, "predicted": 0.5},
    }
    return {
        "format": "adanet-online-controller",
        "config": cost_mode().to_dict(),
        "family": family.to_dict(),
        "map": drop_map.to_dict(),
        "state": state,
    }


# ----------------------------------------------------------------------------- build


def test_build_records_cost_mode_with_plain_python_values() -> None:
    config = cost_mode(costs=[1, 2, 4], target_cost=3, gain=1, update_every=8, seed=5)
    assert config.axis == "cost"
    assert config.costs == (1, 2, 4) and isinstance(config.costs, tuple)
    assert config.target == 3.0 and isinstance(config.target, float)
    assert config.gain == 1.0 and isinstance(config.gain, float)
    assert (config.update_every, config.seed) == (8, 5)


def test_build_records_accuracy_mode_on_the_drop_axis() -> None:
    config = cost_mode(target_cost=None, max_accuracy_drop=0.05)
    assert config.axis == "drop"
    assert config.target == pytest.approx(0.05)


def test_audits_default_to_none_in_cost_mode_and_a_few_in_accuracy_mode() -> None:
    assert cost_mode().audit_share == 0.0
    assert cost_mode(target_cost=None, max_accuracy_drop=0.1).audit_share == DEFAULT_AUDIT_SHARE
    assert 0.0 < DEFAULT_AUDIT_SHARE < 0.5
    assert cost_mode(audit_share=0.25).audit_share == 0.25  # an explicit share is kept as given


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"target_cost": None}, ValueError, "exactly one"),
        ({"max_accuracy_drop": 0.1}, ValueError, "exactly one"),
        ({"target_cost": 0.5}, ValueError, r"below costs\[0\]"),
        ({"target_cost": math.nan}, ValueError, "target_cost must be a finite number"),
        ({"target_cost": math.inf}, ValueError, "target_cost must be a finite number"),
        ({"target_cost": True}, TypeError, "target_cost must be a finite number"),
        ({"target_cost": "3"}, TypeError, "target_cost must be a finite number"),
        ({"target_cost": None, "max_accuracy_drop": 1.5}, ValueError, "max_accuracy_drop"),
        ({"target_cost": None, "max_accuracy_drop": -0.1}, ValueError, "max_accuracy_drop"),
        ({"target_cost": None, "max_accuracy_drop": math.nan}, ValueError, "max_accuracy_drop"),
        ({"target_cost": None, "max_accuracy_drop": False}, TypeError, "max_accuracy_drop"),
        ({"audit_share": 1.5}, ValueError, "audit_share"),
        ({"audit_share": -0.2}, ValueError, "audit_share"),
        ({"audit_share": math.nan}, ValueError, "audit_share"),
        ({"audit_share": True}, TypeError, "audit_share"),
        ({"update_every": 0}, ValueError, "update_every"),
        ({"update_every": 2.0}, TypeError, "update_every"),
        ({"update_every": True}, TypeError, "update_every"),
        ({"gain": -0.5}, ValueError, "gain"),
        ({"gain": 2.5}, ValueError, "gain"),
        ({"gain": math.nan}, ValueError, "gain"),
        ({"gain": "0.5"}, TypeError, "gain"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.0}, TypeError, "seed"),
        ({"seed": False}, TypeError, "seed"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": True}, ValueError, "num_classes"),
        ({"cost_convention": ""}, ValueError, "cost_convention"),
        ({"cost_convention": 7}, ValueError, "cost_convention"),
    ],
)
def test_build_refuses_each_bad_argument_naming_it(
    overrides: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        cost_mode(**overrides)


def test_a_config_is_frozen() -> None:
    config = cost_mode()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.target = 3.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- JSON form


def test_to_dict_holds_every_field_as_json_values() -> None:
    config = cost_mode(temperatures=(1.5, 1.0, 0.8), input_size=(24, 32), cost_convention="actual")
    d = config.to_dict()
    assert set(d) == {field.name for field in dataclasses.fields(ControllerConfig)}
    assert d["costs"] == [1.0, 2.0, 4.0]
    assert d["temperatures"] == [1.5, 1.0, 0.8]
    assert d["input_size"] == [24, 32]
    json.dumps(d, allow_nan=False)  # strict JSON: no tuples, no non-finite numbers


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"target_cost": None, "max_accuracy_drop": 0.05, "audit_share": 0.1},
        {
            "measure": "entropy",
            "temperatures": (1.5, 1.0, 0.8),
            "update_every": 1,
            "gain": 1.5,
            "seed": 9,
            "num_classes": 100,
            "cost_convention": "latency",
            "input_size": (24, 32),
        },
    ],
)
def test_a_config_round_trips_through_json(overrides: dict[str, Any]) -> None:
    config = cost_mode(**overrides)
    restored = ControllerConfig.from_dict(through_json(config.to_dict()))
    assert restored == config
    assert restored.to_dict() == config.to_dict()


def test_from_dict_fills_the_optional_fields_and_normalises_input_size() -> None:
    d = cost_mode().to_dict()
    for key in ("temperatures", "cost_convention", "input_size"):
        del d[key]
    restored = ControllerConfig.from_dict(d)
    assert restored.temperatures is None and restored.cost_convention is None
    assert restored.input_size is None
    assert ControllerConfig.from_dict({**d, "input_size": 28}).input_size == (28, 28)
    assert ControllerConfig.from_dict({**d, "input_size": [3, 24, 32]}).input_size == (24, 32)


def test_from_dict_gives_a_missing_audit_share_its_mode_default() -> None:
    cost = {**cost_mode().to_dict(), "audit_share": None}
    assert ControllerConfig.from_dict(cost).audit_share == 0.0
    drop = {**cost, "axis": "drop", "target": 0.1}
    assert ControllerConfig.from_dict(drop).audit_share == DEFAULT_AUDIT_SHARE


@pytest.mark.parametrize(
    "key",
    [
        "costs",
        "axis",
        "target",
        "audit_share",
        "measure",
        "update_every",
        "gain",
        "seed",
        "num_classes",
    ],
)
def test_from_dict_refuses_a_missing_required_key(key: str) -> None:
    d = cost_mode().to_dict()
    del d[key]
    with pytest.raises(ValueError, match=f"malformed controller config: KeyError\\('{key}'\\)"):
        ControllerConfig.from_dict(d)


@pytest.mark.parametrize("d", [None, [], "config", 3])
def test_from_dict_refuses_what_is_not_a_mapping(d: Any) -> None:
    with pytest.raises(ValueError, match="a controller config must be a mapping"):
        ControllerConfig.from_dict(d)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("costs", "abc", "costs must be a sequence of numbers"),
        ("costs", [1.0, math.nan, 4.0], "finite and non-negative"),
        ("costs", [1.0, -2.0, 4.0], "finite and non-negative"),
        ("costs", [1.0, 4.0, 2.0], "cumulative"),
        ("costs", [True, 2.0, 4.0], "costs must hold numbers"),
        ("costs", [1.0, "2", 4.0], "costs must hold numbers"),
        ("costs", 4.0, "malformed"),
        ("axis", "speed", "axis must be 'cost' or 'drop'"),
        ("axis", None, "axis must be 'cost' or 'drop'"),
        ("target", math.nan, "target_cost must be a finite number"),
        ("target", -math.inf, "target_cost must be a finite number"),
        ("target", True, "target_cost must be a finite number"),
        ("target", "2.5", "target_cost must be a finite number"),
        ("target", None, "exactly one"),
        ("target", 0.5, r"below costs\[0\]"),
        ("audit_share", math.nan, "audit_share"),
        ("audit_share", False, "audit_share"),
        ("audit_share", "0.1", "audit_share"),
        ("audit_share", 2.0, "audit_share"),
        ("measure", "patience", "measure"),
        ("measure", "confidence", "measure must be one of"),
        ("temperatures", [1.0, 1.0], "temperatures has 2 entries for 3 exits"),
        ("temperatures", [1.0, 0.0, 1.0], "positive and finite"),
        ("temperatures", [1.0, math.nan, 1.0], "positive and finite"),
        ("temperatures", [1.0, True, 1.0], "temperatures must be a sequence of numbers"),
        ("temperatures", "1.0", "temperatures must be a sequence of numbers"),
        ("update_every", 0, "update_every"),
        ("update_every", 4.0, "update_every"),
        ("update_every", True, "update_every"),
        ("update_every", math.nan, "update_every"),
        ("gain", math.nan, "gain"),
        ("gain", True, "gain"),
        ("gain", 3.0, "gain"),
        ("gain", None, "gain"),
        ("seed", -3, "seed"),
        ("seed", 0.5, "seed"),
        ("seed", True, "seed"),
        ("num_classes", 0, "num_classes"),
        ("num_classes", False, "num_classes"),
        ("num_classes", 3.0, "num_classes"),
        ("num_classes", "3", "num_classes"),
        ("cost_convention", "", "cost_convention"),
        ("cost_convention", ["actual"], "cost_convention"),
        ("input_size", [0, 32], "input_size"),
        ("input_size", [24.0, 32], "input_size must hold ints"),
        ("input_size", [True, 32], "input_size must hold ints"),
        ("input_size", [1, 2, 3, 4], "input_size"),
        ("input_size", "32", "input_size"),
    ],
)
def test_from_dict_refuses_each_bad_field_with_a_value_error(
    key: str, value: Any, match: str
) -> None:
    # Whatever the constructor would raise (TypeError or ValueError), a bad mapping is a
    # ValueError whose message names the field.
    d = {**cost_mode().to_dict(), key: value}
    with pytest.raises(ValueError, match=match):
        ControllerConfig.from_dict(d)


def test_from_dict_reads_an_accuracy_target_as_a_drop() -> None:
    d = {**cost_mode().to_dict(), "axis": "drop", "target": 0.1}
    config = ControllerConfig.from_dict(d)
    assert config.axis == "drop" and config.target == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (1.5, "max_accuracy_drop"),
        (-0.2, "max_accuracy_drop"),
        (math.nan, "max_accuracy_drop"),
        (True, "malformed.*max_accuracy_drop"),
        ("0.1", "malformed.*max_accuracy_drop"),
    ],
)
def test_from_dict_checks_an_accuracy_target_as_a_fraction(value: Any, match: str) -> None:
    d = {**cost_mode().to_dict(), "axis": "drop", "target": value}
    with pytest.raises(ValueError, match=match):
        ControllerConfig.from_dict(d)


# ----------------------------------------------------------------------------- from_dict_parts


def test_from_dict_parts_returns_each_part_validated_and_typed() -> None:
    d = through_json(controller_mapping())
    config, family, drop_map, state = from_dict_parts(d)
    assert config == cost_mode()
    assert family.cost == (1.0, 2.0, 4.0) and family.drop == (0.5, 0.2, 0.0)
    assert family.thresholds[1] == (0.6, 0.4)
    assert drop_map.edges == ((0.5,), (0.5,))
    assert drop_map.values == ((0.8, 0.2), (0.4, 0.1))
    assert state == controller_mapping()["state"]
    assert isinstance(state["command"], float) and isinstance(state["seen"], int)


def test_from_dict_parts_takes_the_exit_count_from_the_config() -> None:
    d = controller_mapping()
    # A family and map made for two exits do not fit a three-exit config.
    d["family"] = {"thresholds": [[0.0], [CEILING]], "cost": [1.0, 2.0], "drop": [0.3, 0.0]}
    with pytest.raises(ValueError, match="every member needs 2 thresholds"):
        from_dict_parts(d)
    d = controller_mapping()
    d["map"] = {"edges": [[0.5]], "values": [[0.8, 0.2]]}
    with pytest.raises(ValueError, match="disagreement map needs 2 exits"):
        from_dict_parts(d)


@pytest.mark.parametrize("key", ["command", "pending_sum", "cost_sum"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_from_dict_parts_refuses_a_non_finite_learned_value(key: str, value: float) -> None:
    d = controller_mapping()
    d["state"][key] = value
    with pytest.raises(ValueError, match=f"{key} must be a finite number"):
        from_dict_parts(d)


@pytest.mark.parametrize("key", ["seen", "predicted"])
def test_from_dict_parts_refuses_a_non_finite_ledger_sum(key: str) -> None:
    d = controller_mapping()
    d["state"]["ledger"][key] = math.nan
    with pytest.raises(ValueError, match=f"ledger.{key} must be a finite number"):
        from_dict_parts(d)


@pytest.mark.parametrize("key", ["command", "pending_sum", "cost_sum"])
@pytest.mark.parametrize("value", [True, "1.0", None, [1.0]])
def test_from_dict_parts_refuses_a_learned_value_that_is_not_a_number(key: str, value: Any) -> None:
    d = controller_mapping()
    d["state"][key] = value
    with pytest.raises(
        ValueError, match=f"malformed controller mapping.*{key} must be a finite number"
    ):
        from_dict_parts(d)


@pytest.mark.parametrize("part", ["config", "family", "map", "state"])
def test_from_dict_parts_refuses_a_missing_part(part: str) -> None:
    d = controller_mapping()
    del d[part]
    with pytest.raises(ValueError, match=f"malformed controller mapping: KeyError\\('{part}'\\)"):
        from_dict_parts(d)


@pytest.mark.parametrize(
    "key", ["command", "pending_sum", "pending_count", "seen", "cost_sum", "ledger"]
)
def test_from_dict_parts_refuses_a_missing_learned_value(key: str) -> None:
    d = controller_mapping()
    del d["state"][key]
    with pytest.raises(ValueError, match="malformed controller mapping"):
        from_dict_parts(d)


@pytest.mark.parametrize("key", ["audits", "disagreements", "seen", "predicted"])
def test_from_dict_parts_refuses_a_missing_ledger_value(key: str) -> None:
    d = controller_mapping()
    del d["state"]["ledger"][key]
    with pytest.raises(ValueError, match="malformed controller mapping"):
        from_dict_parts(d)


@pytest.mark.parametrize("key", ["seen", "pending_count"])
def test_from_dict_parts_refuses_negative_image_counts(key: str) -> None:
    d = controller_mapping()
    d["state"][key] = -1
    with pytest.raises(ValueError, match=">= 0"):
        from_dict_parts(d)


def test_from_dict_parts_passes_on_a_bad_config_as_a_value_error() -> None:
    d = controller_mapping()
    d["config"] = {**d["config"], "gain": math.nan}
    with pytest.raises(ValueError, match="gain"):
        from_dict_parts(d)
    d["config"] = {**d["config"], "gain": True}
    with pytest.raises(ValueError, match="malformed controller config"):
        from_dict_parts(d)


# ----------------------------------------------------------------------------- check_result


def test_check_result_returns_the_result_tensors_themselves() -> None:
    exit_index = torch.tensor([0, 2, 1], dtype=torch.int32)
    logits = torch.randn(3, 5)
    got_exits, got_logits = check_result(SimpleNamespace(exit_index=exit_index, logits=logits), 3)
    assert got_exits is exit_index and got_logits is logits


def test_check_result_accepts_an_empty_batch() -> None:
    result = SimpleNamespace(exit_index=torch.zeros(0, dtype=torch.long), logits=torch.zeros(0, 4))
    exits, logits = check_result(result, 3)
    assert exits.numel() == 0 and tuple(logits.shape) == (0, 4)


@pytest.mark.parametrize(
    "result",
    [
        torch.zeros(3),
        None,
        SimpleNamespace(exit_index=torch.zeros(3, dtype=torch.long)),
        SimpleNamespace(logits=torch.zeros(3, 4)),
        SimpleNamespace(exit_index=[0, 1, 2], logits=torch.zeros(3, 4)),
        SimpleNamespace(exit_index=torch.zeros(3, dtype=torch.long), logits=[[0.0] * 4] * 3),
    ],
)
def test_check_result_refuses_what_is_not_an_early_exit_result(result: object) -> None:
    with pytest.raises(TypeError, match=f"EarlyExitResult.*got {type(result).__name__}"):
        check_result(result, 3)


@pytest.mark.parametrize(
    ("exit_shape", "logits_shape"),
    [((3, 1), (3, 4)), ((3,), (3,)), ((3,), (3, 4, 1)), ((3,), (2, 4)), ((), (1, 4))],
)
def test_check_result_refuses_shapes_that_disagree(
    exit_shape: tuple[int, ...], logits_shape: tuple[int, ...]
) -> None:
    result = SimpleNamespace(
        exit_index=torch.zeros(exit_shape, dtype=torch.long), logits=torch.zeros(logits_shape)
    )
    with pytest.raises(ValueError, match=r"expected \[N\] and \[N, classes\]"):
        check_result(result, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_check_result_refuses_exit_indices_that_are_not_integers(dtype: torch.dtype) -> None:
    result = SimpleNamespace(exit_index=torch.zeros(3, dtype=dtype), logits=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="must hold integers"):
        check_result(result, 3)


@pytest.mark.parametrize("exits", [[0, 3, 1], [-1, 0, 2]])
def test_check_result_refuses_exits_out_of_range(exits: list[int]) -> None:
    result = SimpleNamespace(exit_index=torch.tensor(exits), logits=torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        check_result(result, 3)


# ------------------------------------------------------- saved states from careless hands


def test_a_config_with_fewer_than_two_exits_is_refused() -> None:
    for costs in ([], [1.0]):
        for mode in ({"target_cost": 1.0}, {"target_cost": None, "max_accuracy_drop": 0.1}):
            d = {**cost_mode().to_dict(), "costs": costs}
            if "max_accuracy_drop" in mode:
                d.update(axis="drop", target=0.1)
            with pytest.raises(ValueError, match="2 or more exits"):
                ControllerConfig.from_dict(d)
    with pytest.raises(ValueError, match="2 or more exits, got costs for 1"):
        cost_mode(costs=(1.0,), target_cost=1.0)


@pytest.mark.parametrize("where", ["config", "state", "ledger", "top"])
def test_misspelt_keys_are_refused_not_dropped(where: str) -> None:
    d = controller_mapping()
    target = {
        "config": d["config"],
        "state": d["state"],
        "ledger": d["state"]["ledger"],
        "top": d,
    }[where]
    target["temperature"] = [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"unknown .*keys \['temperature'\]"):
        from_dict_parts(d)


@pytest.mark.parametrize("value", [None, 0, True, 2.0])
def test_the_recorded_classes_must_be_a_positive_int(value: Any) -> None:
    d = {**cost_mode().to_dict(), "num_classes": value}
    with pytest.raises(ValueError, match="num_classes"):
        ControllerConfig.from_dict(d)


@pytest.mark.parametrize("key", ["seen", "pending_count", "audits", "disagreements"])
@pytest.mark.parametrize("value", [True, "12", 2.7, -1, math.inf])
def test_counts_are_non_negative_ints_not_coerced(key: str, value: Any) -> None:
    d = controller_mapping()
    holder = d["state"]["ledger"] if key in ("audits", "disagreements") else d["state"]
    holder[key] = value
    with pytest.raises(ValueError, match=key):
        from_dict_parts(d)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("cost_sum",), -1.0, r"state\.cost_sum must be >= 0"),
        (("pending_sum",), -0.5, r"state\.pending_sum must be >= 0"),
        (("ledger", "seen"), -1.0, r"ledger\.seen must be >= 0"),
        (("ledger", "disagreements"), 3, "cannot exceed ledger.audits"),
        (("command",), 4.5, r"outside \[1\.0, 4\.0\]"),
        (("command",), 0.5, r"outside \[1\.0, 4\.0\]"),
    ],
)
def test_learned_values_out_of_their_range_are_refused(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    d = controller_mapping()
    holder = d["state"]
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        from_dict_parts(d)


def test_the_hand_made_mapping_is_accepted() -> None:
    # The tests above change one field of this mapping each, so it must itself be valid.
    config, _, _, state = from_dict_parts(through_json(controller_mapping()))
    assert config == cost_mode() and state["command"] == 2.25 and state["ledger"]["audits"] == 2
