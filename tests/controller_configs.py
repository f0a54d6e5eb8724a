"""The online-controller settings the controller's unit tests start from."""

from __future__ import annotations

from typing import Any

from adanet.calibration.online.state import ControllerConfig

__all__ = ["COSTS", "cost_mode"]

#: Cumulative costs of a three-exit network.
COSTS = (1.0, 2.0, 4.0)


def cost_mode(**overrides: Any) -> ControllerConfig:
    """Cost mode on :data:`COSTS`, holding a mean cost of 2.5, a move every 4 images with gain
    0.5, no audits, three classes; ``overrides`` replace any constructor argument."""
    arguments: dict[str, Any] = {
        "costs": COSTS,
        "target_cost": 2.5,
        "max_accuracy_drop": None,
        "audit_share": None,
        "measure": "max_prob",
        "temperatures": None,
        "update_every": 4,
        "gain": 0.5,
        "seed": 0,
        "num_classes": 3,
        "cost_convention": None,
        "input_size": None,
    }
    arguments.update(overrides)
    return ControllerConfig.build(**arguments)
