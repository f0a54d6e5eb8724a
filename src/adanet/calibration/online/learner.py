"""The learned part of an online controller: the command, and how a batch moves it.

:class:`Learner` holds what changes along the stream (the command steered along the
:class:`.ThresholdFamily`, the images pending an update, the audit ledger, totals) and updates
it from one batch's exits and logits (and, for audited images, what ``step`` noted). It is the
only place the controller learns, so ``early_exit`` + ``observe`` and ``simulate`` cannot
diverge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import torch
from torch import Tensor

from adanet.calibration.online.audit import AuditLedger, AuditRecord
from adanet.calibration.online.family import DisagreementMap, ThresholdFamily
from adanet.calibration.online.state import ControllerConfig
from adanet.policies.confidence import exit_confidences

__all__ = ["Learner"]

# In accuracy mode one move changes the command by at most this factor to the power gain, and
# the command never goes below ``eps`` times it.
_DROP_FLOOR: Final[float] = 1.0 / 16.0


class Learner:
    """The command and the statistics of one controller (see the module docstring).

    Args:
        config: The controller's settings.
        family: The family steered along.
        drop_map: The calibration map from confidence to disagreement.
        state: A :meth:`state_dict` to continue from, else a fresh start at the target.
    """

    def __init__(
        self,
        config: ControllerConfig,
        family: ThresholdFamily,
        drop_map: DisagreementMap,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._config, self._family, self._map = config, family, drop_map
        low, high = family.bounds(config.axis)
        state = state or {}
        self.command = float(state.get("command", min(max(config.target, low), high)))
        self._pending_sum = float(state.get("pending_sum", 0.0))
        self._pending_count = int(state.get("pending_count", 0))
        self.seen = int(state.get("seen", 0))
        self.cost_sum = float(state.get("cost_sum", 0.0))
        self.ledger = AuditLedger(**dict(state.get("ledger", {})))
        self._cost_table = torch.tensor(config.costs, dtype=torch.float64)
        self.thresholds = family.at(config.axis, self.command)

    def state_dict(self) -> dict[str, Any]:
        """The learned values, JSON-safe."""
        return {
            "command": self.command,
            "pending_sum": self._pending_sum,
            "pending_count": self._pending_count,
            "seen": self.seen,
            "cost_sum": self.cost_sum,
            "ledger": vars(self.ledger).copy(),
        }

    @property
    def _last(self) -> int:
        return len(self._config.costs) - 1

    def learn(self, exit_index: Tensor, logits: Tensor, record: AuditRecord | None) -> None:
        """Learns from one batch: each image's exit and logits there, and ``step``'s notes on
        the audited images (``None`` when the batch had none)."""
        exits = exit_index.detach().cpu().long()
        n = int(exits.shape[0])
        cost = self._cost_table[exits]
        self.cost_sum += float(cost.sum())
        audited = None if record is None else record.audited()
        if self._config.axis == "cost":
            if audited is not None:  # audits only report in cost mode
                self._audit(exits, audited, *self._predicted(exits, logits))
            # Every image is charged, NaN ones included: their cost is real.
            self._move(float(cost.sum()), n)
        else:
            chosen, valid, predicted = self._predicted(exits, logits)
            if audited is not None:
                self._audit(exits, audited, chosen, valid, predicted)
            estimate = predicted[valid] * self.ledger.ratio
            self._move(float(estimate.sum()), int(valid.sum()))
        self.seen += n

    def _predicted(self, exits: Tensor, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The chosen logits (float64, CPU), which rows are valid (not NaN), and each image's
        chance of disagreeing with the last exit by the calibration map."""
        chosen = logits.detach().cpu().double()
        scaled = chosen
        temperatures = self._config.temperatures
        if temperatures is not None:
            scaled = chosen / torch.tensor(temperatures, dtype=torch.float64)[exits].unsqueeze(1)
        with torch.no_grad():
            if self._config.measure == "max_prob" and bool(torch.isfinite(scaled).all()):
                # The common case, in two operations: this runs after every batch, and at
                # batch size 1 the full measure's guards for infinite and NaN logits would cost
                # a noticeable share of a small network's time.
                confidence = torch.softmax(scaled, dim=1).amax(dim=1)
            else:
                confidence = exit_confidences(scaled, self._config.measure)
        valid = torch.isfinite(confidence)  # NaN logits: no prediction, nothing to learn from
        return chosen, valid, self._map(confidence, exits)

    def _audit(
        self,
        exits: Tensor,
        audited: tuple[Tensor, Tensor, Tensor, Tensor],
        chosen: Tensor,
        valid: Tensor,
        predicted: Tensor,
    ) -> None:
        """Books the audited images (observed against predicted disagreement) in the ledger and
        puts their predicted disagreement at the exit they would have left at into
        ``predicted``, in place."""
        position, would_exit, would_pred, would_conf = audited
        last = self._last
        # A per-batch budget may have forced an audited image out early: not an audit then.
        keep = (exits[position] == last) & valid[position]
        position, would_exit = position[keep], would_exit[keep]
        would_pred, would_conf = would_pred[keep], would_conf[keep]
        observed = ((would_exit < last) & (would_pred != chosen[position].argmax(dim=1))).double()
        guess = self._map(would_conf, would_exit)
        self.ledger.add(observed, guess)
        predicted[position] = guess

    def _move(self, total: float, count: int) -> None:
        """Adds ``count`` images' summed cost (cost mode) or estimated disagreement (accuracy
        mode); once ``update_every`` images are in, moves the command by integral control."""
        self._pending_sum += total
        self._pending_count += count
        if self._pending_count < self._config.update_every:
            return
        cfg = self._config
        mean = self._pending_sum / self._pending_count
        low, high = self._family.bounds(cfg.axis)
        if cfg.axis == "cost":
            command = self.command + cfg.gain * (cfg.target - mean)
        else:
            # Hard images disagree several times as often as easy ones at the same thresholds,
            # a factor on the disagreement: integrating its logarithm keeps the loop gain at
            # ``gain`` whatever the factor. The floors bound a step and keep the log finite.
            low = max(low, cfg.target * _DROP_FLOOR)
            ratio = cfg.target / max(mean, cfg.target * _DROP_FLOOR)
            command = max(self.command, low) * ratio**cfg.gain
        self.command = min(max(command, low), high)
        self._pending_sum, self._pending_count = 0.0, 0
        self.thresholds = self._family.at(cfg.axis, self.command)
