"""The patience rule: leave once ``k`` consecutive exits agree on the predicted class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from adanet._validation import is_int, is_real
from adanet.policies.fields import check_keys
from adanet.policies.protocol import LogitsInput, check_batch_size, check_step_args, stack_logits

__all__ = ["PATIENCE_KEYS", "PatienceExitPolicy"]

_STATE_KEYS = ("prev_pred", "streak")
#: The keys :meth:`PatienceExitPolicy.to_dict` writes and :meth:`PatienceExitPolicy.from_dict`
#: reads.
PATIENCE_KEYS = ("measure", "patience", "thresholds", "num_classes")


def _advance(logits: Tensor, prev_pred: Tensor, streak: Tensor) -> tuple[Tensor, Tensor]:
    """The new prediction and streak length after one more exit."""
    pred = logits.argmax(dim=-1)
    streak = torch.where(pred == prev_pred, streak + 1, torch.ones_like(streak))
    return pred, streak


def _check_positive_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class PatienceExitPolicy:
    """Leave at the first exit ``j >= k - 1`` whose argmax equals that of exits ``j-k+1 .. j``.

    ``k = 1`` sends everybody out at exit 0; the last exit takes everybody left. It follows the
    :class:`adanet.ExitDecider` protocol; its state is the previous prediction and the current
    streak length of every sample, batch-first.

    Args:
        patience: ``k``, the number of consecutive agreeing exits required; at least 1.
        num_exits: Number of exits of the network.
        num_classes: Classes of the model it is meant for, if it should be checked.

    Raises:
        ValueError: If ``patience`` or ``num_exits`` is not an integer >= 1.
    """

    __slots__ = ("_num_classes", "_num_exits", "_patience")

    def __init__(self, patience: int, num_exits: int, *, num_classes: int | None = None) -> None:
        self._patience = _check_positive_int("patience k", patience)
        self._num_exits = _check_positive_int("num_exits", num_exits)
        if num_classes is not None:
            _check_positive_int("num_classes", num_classes)
        self._num_classes = num_classes

    @property
    def patience(self) -> int:
        """``k``: how many consecutive exits must agree."""
        return self._patience

    @property
    def num_exits(self) -> int:
        """Number of exits the policy decides for."""
        return self._num_exits

    @property
    def num_classes(self) -> int | None:
        """Classes of the model it is meant for, if recorded."""
        return self._num_classes

    @property
    def measure(self) -> str:
        """``"patience"`` (the name used in :meth:`to_dict`)."""
        return "patience"

    def _check_classes(self, num_classes: int) -> None:
        if self._num_classes is not None and num_classes != self._num_classes:
            raise ValueError(
                f"the policy is for {self._num_classes} classes but the logits have {num_classes}"
            )

    def simulate(self, logits: LogitsInput) -> Tensor:
        """Exit index of every sample from all-exit logits, as driving :meth:`step` gives.

        Raises:
            ValueError: On malformed logits or another number of exits or classes.
        """
        stacked = stack_logits(logits)
        if stacked.shape[0] != self._num_exits:
            raise ValueError(
                f"the policy has {self._num_exits} exits but the logits have {stacked.shape[0]}"
            )
        self._check_classes(stacked.shape[2])
        num_samples = stacked.shape[1]
        state = self.initial_state(num_samples, stacked.device)
        exits = torch.full(
            (num_samples,), self._num_exits - 1, dtype=torch.long, device=stacked.device
        )
        decided = torch.zeros(num_samples, dtype=torch.bool, device=stacked.device)
        for k in range(self._num_exits - 1):
            leave, state = self.step(k, stacked[k], state)
            exits = torch.where(leave & ~decided, k, exits)
            decided |= leave
        return exits

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """The previous prediction (-1: none yet) and streak length (0) of every sample.

        Raises:
            ValueError: If ``batch_size`` is negative.
        """
        check_batch_size(batch_size)
        return {
            # -1 never equals a class index, so the first exit starts a streak of 1.
            "prev_pred": torch.full((batch_size,), -1, dtype=torch.long, device=device),
            "streak": torch.zeros(batch_size, dtype=torch.long, device=device),
        }

    def step(
        self, exit_index: int, logits: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Advances every streak by one exit and lets the samples with ``k`` in a row leave.

        Raises:
            ValueError: On an out-of-range exit index, logits that are not 2-D, or a state that
                does not come from :meth:`initial_state` or is not indexed to these samples.
        """
        check_step_args(exit_index, logits, self._num_exits)
        self._check_classes(logits.shape[1])
        missing = set(_STATE_KEYS) - set(state)
        if missing:
            raise ValueError(f"patience state lacks {sorted(missing)}; start from initial_state()")
        for key in _STATE_KEYS:
            if state[key].shape[0] != logits.shape[0]:
                raise ValueError(
                    f"state[{key!r}] has {state[key].shape[0]} samples but logits have "
                    f"{logits.shape[0]}; index the state with the kept samples"
                )
        with torch.no_grad():
            pred, streak = _advance(logits, state["prev_pred"], state["streak"])
            if exit_index == self._num_exits - 1:
                leave = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
            else:
                leave = streak >= self._patience
        return leave, {"prev_pred": pred, "streak": streak}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, readable by the old ``EarlyExitPolicy`` format as well."""
        out: dict[str, Any] = {
            "measure": "patience",
            "patience": self._patience,
            "thresholds": [float(self._patience)] * self._num_exits,
        }
        if self._num_classes is not None:
            out["num_classes"] = self._num_classes
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PatienceExitPolicy:
        """Rebuilds a policy from :meth:`to_dict` (or an old patience ``EarlyExitPolicy`` dict).

        ``thresholds`` holds one entry per exit, each equal to ``patience`` (which defaults to
        the first of them): a document whose entries disagree is ambiguous and refused.

        Raises:
            ValueError: If the mapping is not a patience policy, or holds a key outside
                :data:`PATIENCE_KEYS`.
        """
        if not isinstance(d, Mapping) or d.get("measure") != "patience" or "thresholds" not in d:
            raise ValueError(f"expected a patience policy mapping, got {d!r}")
        check_keys(d, PATIENCE_KEYS, "patience policy")
        thresholds = d["thresholds"]
        if not isinstance(thresholds, list | tuple) or not thresholds:
            raise ValueError(f"'thresholds' must be a non-empty list, got {thresholds!r}")
        if any(not is_real(t) for t in thresholds):
            raise ValueError(f"'thresholds' must hold numbers, got {thresholds!r}")
        raw = d.get("patience", thresholds[0])
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if any(t != raw for t in thresholds):
            raise ValueError(
                f"a patience policy's thresholds must all equal its patience {raw!r}, got "
                f"{thresholds!r}"
            )
        return cls(raw, len(thresholds), num_classes=d.get("num_classes"))

    def __repr__(self) -> str:
        return f"PatienceExitPolicy({self._patience}, num_exits={self._num_exits})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatienceExitPolicy):
            return NotImplemented
        return (self._patience, self._num_exits, self._num_classes) == (
            other._patience,
            other._num_exits,
            other._num_classes,
        )

    def __hash__(self) -> int:
        return hash((self._patience, self._num_exits, self._num_classes))
