"""The metadata checks shared by model directories and ONNX exports
(``adanet.deploy.metadata``): each refuses bad input with the caller's error type and names
the field."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.deploy import metadata
from adanet.models import PretrainedCfg


class _Refused(Exception):
    """Stands for the caller's error type (PretrainedError, OnnxExportError)."""


def _ranet() -> RANet:
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=7)).eval()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"a": NaN}', "non-standard constant NaN"),
        (b'{"a": 1, "a": 2}', r"\['a'\] given twice"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_parse_json_is_strict(payload: bytes, message: str) -> None:
    with pytest.raises(_Refused, match=message):
        metadata.parse_json(payload, "config.json", _Refused)
    assert metadata.parse_json(b'{"a": [1, 2.5]}', "x", _Refused) == {"a": [1, 2.5]}


def test_require_keys_names_missing_and_unknown_keys() -> None:
    with pytest.raises(_Refused, match="must be a JSON object, got list"):
        metadata.require_keys([], "costs", _Refused, required=("macs",))
    with pytest.raises(_Refused, match=r"costs lacks \['macs'\]"):
        metadata.require_keys({}, "costs", _Refused, required=("macs",))
    with pytest.raises(_Refused, match=r"unknown keys \['extra'\]; allowed: \['macs', 'note'\]"):
        metadata.require_keys(
            {"macs": 1, "extra": 2}, "costs", _Refused, required=("macs",), optional=("note",)
        )


@pytest.mark.parametrize("value", [True, -3, 0, 1.0, "1", None])
def test_a_format_version_is_an_int_from_one(value: Any) -> None:
    with pytest.raises(_Refused, match="format_version must be an int >= 1"):
        metadata.check_version(value, 1, "config.json", _Refused)


def test_a_newer_format_version_says_to_upgrade() -> None:
    assert metadata.check_version(2, 2, "x", _Refused) == 2
    with pytest.raises(_Refused, match=r"format version 3, newer .* upgrade adanet"):
        metadata.check_version(3, 2, "x", _Refused)


_GOOD_COSTS = {"convention": "actual", "input_size": [3, 32, 32], "macs": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"macs": [1.0]}, "3"),
        ({"macs": [-1, math.nan, 1e300]}, "macs"),
        ({"macs": [3.0, 2.0, 1.0]}, "macs"),
        ({"convention": "flops"}, r"convention must be one of \('actual', 'reference'\)"),
        ({"input_size": [1, 32, 32]}, "has 1 channels; the model takes 3"),
        ({"input_size": [3, 32]}, r"must be \[C, H, W\]"),
        ({"input_size": [3, True, 32]}, r"must be \[C, H, W\]"),
    ],
)
def test_a_cost_record_is_checked_field_by_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(_Refused, match=message):
        metadata.check_cost_record(
            {**_GOOD_COSTS, **change}, num_exits=3, channels=3, where="costs", error=_Refused
        )


def test_a_good_cost_record_reads_back() -> None:
    record = metadata.check_cost_record(
        _GOOD_COSTS, num_exits=3, channels=3, where="costs", error=_Refused
    )
    assert record == metadata.CostRecord("actual", (3, 32, 32), (1.0, 2.0, 3.0))


def test_preprocessing_must_be_for_the_models_channels() -> None:
    gray = PretrainedCfg(mean=(0.5,), std=(0.2,), input_size=(1, 8, 8))
    with pytest.raises(_Refused, match="for 1-channel images; the model takes 3"):
        metadata.check_preprocessing(gray.to_dict(), channels=3, where="prep", error=_Refused)
    with pytest.raises(_Refused, match="prep: "):
        metadata.check_preprocessing({"mean": "x"}, channels=3, where="prep", error=_Refused)
    assert metadata.check_preprocessing(gray, channels=1, where="prep", error=_Refused) == gray


def test_head_classes_reads_the_last_linear_of_every_head() -> None:
    model = _ranet()
    assert metadata.head_classes(model) == 7
    assert metadata.head_classes(nn.Linear(2, 2)) is None  # no exits at all


def test_a_policy_must_fit_the_model_it_travels_with() -> None:
    model = _ranet()
    fits = EarlyExitPolicy([0.5, 0.5, -math.inf], num_classes=7, input_size=(32, 32))
    assert metadata.check_policy_for(model, fits, (3, 32, 32)) is fits
    with pytest.raises(ValueError, match="99"):
        metadata.check_policy_for(model, EarlyExitPolicy([0.5, 0.5, 0.0], num_classes=99), None)
    with pytest.raises(ValueError, match="2 exits but the model has 3"):
        metadata.check_policy_for(model, EarlyExitPolicy([0.5, 0.0]), None)
    with pytest.raises(ValueError, match="32"):
        metadata.check_policy_for(model, fits, (3, 16, 16))
    with pytest.raises(TypeError, match="EarlyExitPolicy or PatienceExitPolicy"):
        metadata.check_policy_for(model, object(), None)


def test_a_policy_document_is_parsed_then_checked() -> None:
    document = EarlyExitPolicy([0.5, 0.5, 0.0]).to_dict()
    policy = metadata.check_policy_document(
        document, num_exits=3, num_classes=7, input_size=None, where="policy", error=_Refused
    )
    assert policy == EarlyExitPolicy([0.5, 0.5, 0.0])
    with pytest.raises(_Refused, match="policy: "):
        metadata.check_policy_document(
            {"thresholds": "x"}, num_exits=3, num_classes=7, input_size=None,
            where="policy", error=_Refused,
        )  # fmt: skip


def test_bounded_build_allocates_nothing_and_stops_early() -> None:
    built = metadata.bounded_build(_ranet, "config.json", _Refused)
    assert all(t.is_meta for t in built.state_dict().values())
    assert metadata.state_bytes(built.state_dict()) == metadata.state_bytes(_ranet().state_dict())
    with pytest.raises(_Refused, match="more than 10 modules"):
        metadata.bounded_build(_ranet, "config.json", _Refused, max_modules=10)
    with pytest.raises(_Refused, match="more than 100 parameter"):
        metadata.bounded_build(_ranet, "config.json", _Refused, max_parameters=100)

    def invalid() -> RANet:
        return RANet(RANetConfig(num_blocks=0))

    with pytest.raises(_Refused, match="cannot build the network it describes"):
        metadata.bounded_build(invalid, "config.json", _Refused)


def test_weights_must_match_names_shapes_and_dtypes() -> None:
    expected = {"w": torch.zeros(2, 3), "b": torch.zeros(2)}
    metadata.check_state_matches(
        expected, {"w": torch.ones(2, 3), "b": torch.ones(2)}, "f", _Refused
    )
    with pytest.raises(_Refused, match=r"missing \['b'\], unexpected \['c'\]"):
        metadata.check_state_matches(
            expected, {"w": torch.ones(2, 3), "c": torch.ones(2)}, "f", _Refused
        )
    with pytest.raises(_Refused, match=r"'b' is torch\.int64"):
        metadata.check_state_matches(
            expected, {"w": torch.ones(2, 3), "b": torch.ones(2, dtype=torch.long)}, "f", _Refused
        )
    with pytest.raises(_Refused, match=r"'w' is torch.float32 \[3, 2\]"):
        metadata.check_state_matches(
            expected, {"w": torch.ones(3, 2), "b": torch.ones(2)}, "f", _Refused
        )


@pytest.mark.parametrize("values", [[math.nan, -1, "3"], [1.0, 0.5, 2.0], [1.0, 2.0]])
def test_a_latency_record_must_be_finite_and_cumulative(values: list[Any]) -> None:
    with pytest.raises(_Refused, match="latency_ms"):
        metadata.finite_sequence(values, 3, "latency_ms", _Refused)
    assert metadata.finite_sequence([0.1, 0.2, 0.2], 3, "latency_ms", _Refused) == [0.1, 0.2, 0.2]
