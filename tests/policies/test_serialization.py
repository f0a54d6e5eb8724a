"""``policy_from_dict`` (adanet.policies.serialization): one reader for every built-in policy's
JSON form, refusing unknown keys and bad values by name."""

from __future__ import annotations

import math

import pytest

from adanet import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy


def test_policy_from_dict_dispatches_on_the_measure() -> None:
    from adanet.policies.serialization import policy_from_dict

    threshold = EarlyExitPolicy([0.5, -math.inf], temperatures=[2.0, 1.0])
    patience = PatienceExitPolicy(2, 3, num_classes=5)
    assert policy_from_dict(threshold.to_dict()) == threshold
    assert policy_from_dict(patience.to_dict()) == patience
    with pytest.raises(ValueError):
        policy_from_dict([0.5])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"thresholds": [0.5, 0.5], "temperature": [2, 2]},
            r"unknown policy keys \['temperature'\]",
        ),
        ({"thresholds": [0.5, 0.5], "temperatures": "11"}, "temperatures must be a sequence"),
        ({"thresholds": [0.5, 0.5], "temperatures": ["1", "1"]}, "temperatures must be a sequence"),
        ({"thresholds": ["nan", 0.5]}, "cannot decode threshold"),
        ({"thresholds": [10**400, 0.5]}, "cannot decode threshold"),
        ({"thresholds": [0.5, 0.5], "input_size": [0, 32, 32]}, "positive ints"),
        (
            {"measure": "patience", "patience": 2, "thresholds": [2, 2], "temperatures": [1, 1]},
            r"unknown patience policy keys \['temperatures'\]",
        ),
        ({"measure": "patience", "patience": 2, "thresholds": [2, 3]}, "must all equal"),
        ({"measure": "patience", "patience": 2, "thresholds": ["2", "2"]}, "must hold numbers"),
    ],
)
def test_policy_documents_with_unknown_keys_or_bad_values_are_refused(
    document: dict[str, object], message: str
) -> None:
    from adanet.policies.serialization import policy_from_dict

    with pytest.raises(ValueError, match=message):
        policy_from_dict(document)
