"""An exit policy that re-tunes itself on the stream it serves: :class:`OnlineController`.

Thresholds calibrated once assume the test stream looks like the calibration set; when the
share of hard images moves, spending moves with it. The controller holds one quantity at a
target while the stream shifts:

* **cost mode** (``target_cost``): the mean cost per image (MACs, or seconds from
  :func:`adanet.measure_exit_latency`);
* **accuracy mode** (``max_accuracy_drop``): the share of images whose exit disagrees with
  what the last exit would say, estimated without labels: every image's chance of disagreeing
  from its exit and confidence (a map fitted on the calibration logits), corrected by a few
  audited images that run to the last exit (:mod:`.audit`).

It steers along a calibrated family of thresholds (:class:`.ThresholdFamily`, the
reference's geometric shares) by one command: the calibration cost (or disagreement) of the
member it uses. Between batches, integral control moves the command once ``update_every``
images (or more) have been observed: by ``gain`` times the mean error in cost mode, and by the
factor ``(eps / estimate) ** gain`` in accuracy mode, where a shift multiplies the
disagreement rather than adding to it (integral control of its logarithm). This is the
discrete integral ("I") controller of feedback control of computing systems (Hellerstein,
Diao, Parekh and Tilbury, *Feedback Control of Computing Systems*, Wiley 2004, ch. 9), with the
calibration table as a static inverse of the plant so that the loop gain is about ``gain``,
and the command clamped to the table's range as anti-windup (Astrom and Murray, *Feedback
Systems*, 2008, sec. 10.4). As long as the command is not clamped, the summed error stays
bounded (it is the command's distance from where it started, over ``gain``), so over a long
stream the mean cost converges to its target. Tuning early-exit thresholds online has been
done inside a serving system by Apparate (Dai et al., SOSP 2024); here it is a policy object.

It follows the :class:`adanet.ExitDecider` protocol, so ``early_exit(model, x, controller)``
runs it; after each batch the caller passes the result to :meth:`OnlineController.observe`.
Decisions within a batch use fixed thresholds; learning happens only in ``observe`` (and in
:meth:`OnlineController.simulate`, which is ``early_exit`` + ``observe`` from all-exit logits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import torch
from torch import Tensor

from adanet._validation import check_costs, require_int
from adanet.calibration.online.audit import (
    AUDIT,
    POSITION,
    WOULD_EXIT,
    AuditRecord,
    audit_mask,
    noted_replay,
)
from adanet.calibration.online.family import DisagreementMap, ThresholdFamily, disagreements
from adanet.calibration.online.learner import Learner
from adanet.calibration.online.state import ControllerConfig, check_result, from_dict_parts
from adanet.policies.confidence import check_measure, exit_confidences
from adanet.policies.fields import check_temperatures, normalise_input_size
from adanet.policies.protocol import LogitsInput, check_batch_size, check_step_args, stack_logits
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["OnlineController"]

_FORMAT: Final[str] = "adanet-online-controller"


class OnlineController:
    """An exit policy that holds a cost or an accuracy-drop target on a shifting stream.

    Args:
        calibration_logits: ``[exits, N, classes]`` held-out logits (or one tensor per exit).
        costs: Cumulative cost of each exit for one image, in the units of ``target_cost``.
        target_cost: Cost mode: the mean cost per image to hold, ``>= costs[0]``.
        max_accuracy_drop: Accuracy mode: ``eps`` in ``(0, 1)``, the share of images allowed
            to disagree with the last exit.
        audit_share: Share of images audited (run to the last exit, charged its cost);
            ``None``: 0.05 in accuracy mode, 0 in cost mode (where audits only report).
        measure: Confidence measure, one of :data:`adanet.policies.MEASURES`.
        temperatures: Per-exit temperatures applied before the measure.
        update_every: Images observed between two moves of the command, at least 1.
        gain: Integral gain per move, in ``(0, 2)``; larger follows shifts faster and noise too.
        seed: Shifts which images are audited.
        family_size: Members of the calibrated family, at least 2.
        cost_convention: Convention of ``costs`` (recorded; e.g. ``"actual"``, ``"latency"``).
        input_size: Input size the costs were measured for (recorded).

    Raises:
        TypeError: Arguments of the wrong type.
        ValueError: Not exactly one target, a target out of range, fewer than two exits,
            malformed logits or costs.
    """

    def __init__(
        self,
        calibration_logits: LogitsInput,
        costs: Sequence[float] | Tensor,
        *,
        target_cost: float | None = None,
        max_accuracy_drop: float | None = None,
        audit_share: float | None = None,
        measure: str = "max_prob",
        temperatures: Sequence[float] | None = None,
        update_every: int = 32,
        gain: float = 0.5,
        seed: int = 0,
        family_size: int = 121,
        cost_convention: str | None = None,
        input_size: int | Sequence[int] | None = None,
    ) -> None:
        stacked = stack_logits(calibration_logits, "calibration_logits")
        num_exits, num_samples, num_classes = (int(v) for v in stacked.shape)
        if num_exits < 2 or num_samples < 1:
            raise ValueError(
                "an online controller needs 2+ exits and 1+ calibration samples, got "
                f"{num_exits} exits and {num_samples} samples"
            )
        require_int("family_size", family_size, 2)
        config = ControllerConfig.build(
            costs=check_costs(costs, num_exits),
            target_cost=target_cost,
            max_accuracy_drop=max_accuracy_drop,
            audit_share=audit_share,
            measure=check_measure(measure),
            temperatures=check_temperatures(temperatures, num_exits),
            update_every=update_every,
            gain=gain,
            seed=seed,
            num_classes=num_classes,
            cost_convention=cost_convention,
            input_size=normalise_input_size(input_size),
        )
        with torch.no_grad():
            confidence = exit_confidences(stacked, config.measure, config.temperatures)
            valid = ~stacked.isnan().any(dim=2)
            disagree = disagreements(stacked.argmax(dim=2), valid)
            family = ThresholdFamily.calibrate(
                confidence.to(torch.float64).cpu(), disagree, config.costs, family_size
            )
            drop_map = DisagreementMap.fit(confidence, disagree)
        self._setup(config, family, drop_map)

    def _setup(
        self,
        config: ControllerConfig,
        family: ThresholdFamily,
        drop_map: DisagreementMap,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._config = config
        self._family = family
        self._map = drop_map
        self._learner = Learner(config, family, drop_map, state)
        self._record: AuditRecord | None = None

    @property
    def num_exits(self) -> int:
        """Number of exits it decides for."""
        return len(self._config.costs)

    @property
    def num_classes(self) -> int:
        """Classes of the calibration logits."""
        return self._config.num_classes

    @property
    def cost_convention(self) -> str | None:
        """Convention of the costs, if recorded."""
        return self._config.cost_convention

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` the costs were measured for, if recorded."""
        return self._config.input_size

    @property
    def mode(self) -> str:
        """``"cost"`` or ``"accuracy"``."""
        return "cost" if self._config.axis == "cost" else "accuracy"

    @property
    def target(self) -> float:
        """The mean cost (cost mode) or disagreement ``eps`` (accuracy mode) held."""
        return self._config.target

    @property
    def audit_share(self) -> float:
        """Share of the images audited."""
        return self._config.audit_share

    @property
    def seed(self) -> int:
        """Offset of the audit sequence."""
        return self._config.seed

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The thresholds the next batch is decided with (the last exit's is ``-inf``)."""
        return self._learner.thresholds

    @property
    def command(self) -> float:
        """The calibration cost (cost mode) or disagreement (accuracy mode) steered to."""
        return self._learner.command

    @property
    def images_seen(self) -> int:
        """Images observed so far."""
        return self._learner.seen

    def stats(self) -> dict[str, float]:
        """What the controller has seen: images, mean cost, audits and the map's correction."""
        learner = self._learner
        ledger = learner.ledger
        return {
            "images": float(learner.seen),
            "mean_cost": learner.cost_sum / learner.seen if learner.seen else math.nan,
            "audits": float(ledger.audits),
            "audit_disagreement": ledger.disagreements / ledger.audits
            if ledger.audits
            else math.nan,
            "map_ratio": ledger.ratio,
            "command": learner.command,
        }

    def policy(self) -> EarlyExitPolicy:
        """The current thresholds as a static policy (without audits)."""
        cfg = self._config
        return EarlyExitPolicy(
            self._learner.thresholds,
            cfg.measure,
            temperatures=cfg.temperatures,
            num_classes=cfg.num_classes,
            cost_convention=cfg.cost_convention,
            input_size=cfg.input_size,
        )

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Per-sample state for the next batch: which samples are audited, and what they would
        have done. Empty when the batch has no audit. Starts the batch's audit record.

        Raises:
            ValueError: A negative ``batch_size``.
        """
        check_batch_size(batch_size)
        audit = self._audits(batch_size)
        any_audit = bool(audit.any())
        self._record = AuditRecord(self._learner.seen, batch_size, any_audit)
        if not any_audit:
            return {}
        notes = torch.zeros(batch_size, 5, dtype=torch.float64)
        notes[:, AUDIT] = audit.double()
        notes[:, POSITION] = torch.arange(batch_size, dtype=torch.float64)
        notes[:, WOULD_EXIT] = self.num_exits - 1
        return {"notes": notes.to(device)}

    def _audits(self, batch_size: int) -> Tensor:
        """Which images of the next batch of ``batch_size`` are audited (CPU bool)."""
        cfg = self._config
        return audit_mask(self._learner.seen, batch_size, cfg.audit_share, cfg.seed)

    def _confidence(self, exit_index: int, logits: Tensor) -> Tensor:
        temperatures = self._config.temperatures
        temperature = None if temperatures is None else temperatures[exit_index]
        return exit_confidences(logits, self._config.measure, temperature)

    def step(
        self, exit_index: int, logits: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Which samples leave at ``exit_index``: confidence at the threshold, not audited.

        Raises:
            ValueError: On an out-of-range exit index or logits of the wrong shape.
        """
        check_step_args(exit_index, logits, self.num_exits)
        self._check_classes(int(logits.shape[1]))
        last = self.num_exits - 1
        if exit_index == last:
            return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device), dict(state)
        with torch.no_grad():
            confidence = self._confidence(exit_index, logits)
            leave = confidence >= self._learner.thresholds[exit_index]
            if "notes" not in state:
                return leave, dict(state)
            notes = state["notes"]
            audit = notes[:, AUDIT] > 0
            first = leave & audit & (notes[:, WOULD_EXIT] == last)
            noted = torch.stack(
                [
                    notes[:, AUDIT],
                    notes[:, POSITION],
                    torch.full_like(notes[:, WOULD_EXIT], exit_index),
                    logits.argmax(dim=1).double(),
                    confidence.double(),
                ],
                dim=1,
            )
            notes = torch.where(first.unsqueeze(1), noted, notes)
        if exit_index == last - 1 and self._record is not None:
            # The audited samples are all still in here: hand their notes to observe().
            self._record.notes = notes
        return leave & ~audit, {"notes": notes}

    def leave_priority(self, exit_index: int, logits: Tensor, state: Any) -> Tensor:
        """How close each sample is to leaving (its confidence), for a per-batch budget."""
        return self._confidence(exit_index, logits)

    def simulate(self, logits: LogitsInput) -> Tensor:
        """Decides one batch from its all-exit logits and learns from it, exactly as
        ``early_exit(model, x, controller)`` followed by :meth:`observe` would.

        Args:
            logits: ``[exits, N, classes]`` (or one ``[N, classes]`` tensor per exit).

        Returns:
            ``[N]`` int64 exit indices.
        """
        stacked = stack_logits(logits)
        if stacked.shape[0] != self.num_exits:
            raise ValueError(
                f"the controller has {self.num_exits} exits but the logits have {stacked.shape[0]}"
            )
        self._check_classes(int(stacked.shape[2]))
        n, last = int(stacked.shape[1]), self.num_exits - 1
        state = self.initial_state(n, stacked.device)
        with torch.no_grad():
            confidence = [self._confidence(k, stacked[k]) for k in range(last)]
            would = torch.full((n,), last, dtype=torch.long, device=stacked.device)
            for k in range(last - 1, -1, -1):
                would = torch.where(confidence[k] >= self._learner.thresholds[k], k, would)
            exits = would
            if state and self._record is not None:
                exits, self._record.notes = noted_replay(stacked, confidence, would, state["notes"])
            chosen = stacked[exits, torch.arange(n, device=stacked.device)]
        self._learner.learn(exits, chosen, self._record)
        self._record = None
        return exits

    def observe(self, result: Any) -> None:
        """Learns from the result of ``early_exit(model, x, controller)`` on the latest batch.

        Only ``result.exit_index`` and ``result.logits`` are read: each image is charged the
        controller's own ``costs`` at its exit, so the units always match the target.

        Raises:
            TypeError: ``result`` is not an early-exit result.
            ValueError: Its shapes are inconsistent, or its batch is not the one the
                controller last decided (audits cannot be matched).
        """
        exit_index, logits = check_result(result, self.num_exits)
        n = int(exit_index.shape[0])
        record = self._record
        mine = record is not None and record.start == self._learner.seen and record.size == n
        if not mine and bool(self._audits(n).any()):
            raise ValueError(
                "observe() takes the result of early_exit(model, x, controller) for the batch "
                f"the controller decided last ({n} images at stream position {self._learner.seen})"
            )
        self._learner.learn(exit_index, logits, record if mine else None)
        self._record = None

    def _check_classes(self, num_classes: int) -> None:
        if num_classes != self._config.num_classes:
            raise ValueError(
                f"the controller was calibrated for {self._config.num_classes} classes but the "
                f"logits have {num_classes}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream after a restart, JSON-safe."""
        return {
            "format": _FORMAT,
            "config": self._config.to_dict(),
            "family": self._family.to_dict(),
            "map": self._map.to_dict(),
            "state": self._learner.state_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OnlineController:
        """The controller :meth:`to_dict` described, continuing where it stopped.

        Raises:
            ValueError: ``d`` is not a controller's description.
        """
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise ValueError(f"expected a mapping with format {_FORMAT!r} (from to_dict())")
        config, family, drop_map, state = from_dict_parts(d)
        controller = cls.__new__(cls)
        controller._setup(config, family, drop_map, state)
        return controller

    def __repr__(self) -> str:
        target = "target_cost" if self.mode == "cost" else "max_accuracy_drop"
        return (
            f"OnlineController({target}={self._config.target!r}, exits={self.num_exits}, "
            f"seen={self._learner.seen}, command={self._learner.command:.6g})"
        )
