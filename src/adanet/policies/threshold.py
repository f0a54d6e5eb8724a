"""Threshold policies: a sample leaves at the first exit whose confidence reaches a threshold.

An :class:`EarlyExitPolicy` holds one threshold per exit on a confidence measure
(:mod:`adanet.policies.confidence`) computed from that exit's logits, optionally divided by a
per-exit temperature first. The last exit takes every sample that is still there.

It follows the :class:`adanet.ExitDecider` protocol, so the same decisions come in two forms
that agree exactly: :meth:`EarlyExitPolicy.simulate` over the logits of every exit, and
:meth:`EarlyExitPolicy.initial_state` / :meth:`EarlyExitPolicy.step` for the real early-exit
loop of :func:`adanet.early_exit`. Calibration lives in :mod:`adanet.calibration` (shares,
cost targets, and accuracy-drop targets with or without a guarantee); the patience rule is
:class:`adanet.PatienceExitPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from adanet.policies.confidence import MEASURES, check_measure, exit_confidences
from adanet.policies.fields import (
    check_context,
    check_keys,
    check_temperatures,
    decode_threshold,
    encode_threshold,
    float_tuple,
    normalise_input_size,
)
from adanet.policies.protocol import LogitsInput, check_batch_size, check_step_args, stack_logits

__all__ = ["MEASURES", "POLICY_KEYS", "EarlyExitPolicy", "LogitsInput"]

#: The keys :meth:`EarlyExitPolicy.to_dict` writes and :meth:`EarlyExitPolicy.from_dict` reads.
POLICY_KEYS = (
    "measure",
    "thresholds",
    "temperatures",
    "num_classes",
    "cost_convention",
    "input_size",
)


class EarlyExitPolicy:
    """Per-exit thresholds on a confidence measure, optionally after per-exit temperatures.

    A sample leaves at the first exit ``k`` whose confidence, computed from
    ``logits / temperatures[k]``, is ``>= thresholds[k]``; the last exit takes every sample still
    there whatever its threshold. ``inf`` means nobody leaves at that exit, ``-inf`` that
    everybody still there does. A sample whose logits hold a NaN is never confident (it leaves at
    the last exit).

    The policy can record what it was calibrated for: ``num_classes``, and the
    ``cost_convention`` and ``input_size`` of the costs it was calibrated with.
    :func:`adanet.early_exit` and :func:`adanet.evaluate_policy` refuse a model or input that
    differs from what is recorded. Calibration functions fill ``num_classes`` in.

    Policies are immutable, compare by value and round-trip through :meth:`to_dict`.

    Args:
        thresholds: One threshold per exit; NaN is rejected.
        measure: One of :data:`MEASURES`.
        temperatures: ``None`` or one positive temperature per exit.
        num_classes: Classes of the model the policy was calibrated for, if known.
        cost_convention: Convention of the calibration costs (``"actual"``, ``"reference"``,
            ``"latency"``...), if known.
        input_size: Input size ``S``, ``(H, W)`` or ``(C, H, W)`` of those costs, if known.

    Raises:
        TypeError: If ``thresholds`` or ``temperatures`` are not sequences of numbers.
        ValueError: If ``thresholds`` is empty or holds NaN, the measure is unknown, or a
            temperature or recorded value is invalid.
    """

    __slots__ = ("_context", "_measure", "_temperatures", "_thresholds")

    def __init__(
        self,
        thresholds: Sequence[float],
        measure: str = "max_prob",
        *,
        temperatures: Sequence[float] | None = None,
        num_classes: int | None = None,
        cost_convention: str | None = None,
        input_size: int | Sequence[int] | None = None,
    ) -> None:
        self._measure = check_measure(measure)
        values = float_tuple("thresholds", thresholds)
        if not values:
            raise ValueError("thresholds must have one entry per exit; got none")
        nan_at = [k for k, t in enumerate(values) if math.isnan(t)]
        if nan_at:
            raise ValueError(f"thresholds must not be NaN; exits {nan_at} are NaN")
        self._thresholds = values
        self._temperatures = check_temperatures(temperatures, len(values))
        check_context(num_classes, cost_convention)
        self._context: tuple[int | None, str | None, tuple[int, int] | None] = (
            num_classes,
            cost_convention,
            normalise_input_size(input_size),
        )

    # ------------------------------------------------------------------ construction

    def with_context(
        self,
        *,
        num_classes: int | None = None,
        cost_convention: str | None = None,
        input_size: int | Sequence[int] | None = None,
    ) -> EarlyExitPolicy:
        """A copy that also records these (the ones given replace the recorded ones)."""
        old_classes, old_convention, old_size = self._context
        return EarlyExitPolicy(
            self._thresholds,
            self._measure,
            temperatures=self._temperatures,
            num_classes=old_classes if num_classes is None else num_classes,
            cost_convention=old_convention if cost_convention is None else cost_convention,
            input_size=old_size if input_size is None else input_size,
        )

    # ------------------------------------------------------------------ properties

    @property
    def thresholds(self) -> tuple[float, ...]:
        """One threshold per exit (the last one is never consulted)."""
        return self._thresholds

    @property
    def measure(self) -> str:
        """The confidence measure, one of :data:`MEASURES`."""
        return self._measure

    @property
    def temperatures(self) -> tuple[float, ...] | None:
        """Per-exit temperatures applied before the measure, or ``None`` (all 1)."""
        return self._temperatures

    @property
    def num_exits(self) -> int:
        """Number of exits the policy is built for."""
        return len(self._thresholds)

    @property
    def num_classes(self) -> int | None:
        """Classes of the model the policy was calibrated for, if recorded."""
        return self._context[0]

    @property
    def cost_convention(self) -> str | None:
        """Convention of the costs the policy was calibrated with, if recorded."""
        return self._context[1]

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the costs the policy was calibrated with, if recorded."""
        return self._context[2]

    # ------------------------------------------------------------------ decisions

    def _check_logits(self, stacked: Tensor) -> None:
        if stacked.shape[0] != self.num_exits:
            raise ValueError(
                f"the policy has {self.num_exits} thresholds but the logits have "
                f"{stacked.shape[0]} exits; they must match"
            )
        if self.num_classes is not None and stacked.shape[-1] != self.num_classes:
            raise ValueError(
                f"the policy was calibrated for {self.num_classes} classes but the logits have "
                f"{stacked.shape[-1]}"
            )

    def confidence(self, logits: LogitsInput) -> Tensor:
        """``[exits, samples]`` confidences, exactly as :meth:`step` computes them."""
        stacked = stack_logits(logits)
        self._check_logits(stacked)
        with torch.no_grad():
            return exit_confidences(stacked, self._measure, self._temperatures)

    def exits_from_confidence(self, confidence: Tensor) -> Tensor:
        """Exit index per sample from ``[exits, samples]`` confidences, as :meth:`step` decides."""
        if confidence.ndim != 2 or confidence.shape[0] != self.num_exits:
            raise ValueError(
                f"confidence must be [{self.num_exits}, samples], got {tuple(confidence.shape)}"
            )
        num_exits, num_samples = confidence.shape
        exits = torch.full(
            (num_samples,), num_exits - 1, dtype=torch.long, device=confidence.device
        )
        # Walking backwards leaves each sample at the first exit that lets it go. (An argmax over
        # a [exits, samples] mask is the obvious alternative but is several times slower on CPU.)
        for k in range(num_exits - 2, -1, -1):
            # Python-scalar comparison, exactly the operation step() performs.
            exits = torch.where(confidence[k] >= self._thresholds[k], k, exits)
        return exits

    def simulate(self, logits: LogitsInput) -> Tensor:
        """Exit index of every sample given the logits of all exits.

        Gives exactly the decisions of running :meth:`initial_state` / :meth:`step` exit by exit.

        Args:
            logits: ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor per
                exit.

        Returns:
            ``[samples]`` int64 tensor of exit indices, on the logits' device.

        Raises:
            ValueError: If the logits are malformed, or their number of exits (or classes, when
                recorded) differs from the policy's.
        """
        return self.exits_from_confidence(self.confidence(logits))

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Per-sample decision state before the first exit: empty, thresholds are stateless.

        Raises:
            ValueError: If ``batch_size`` is negative.
        """
        check_batch_size(batch_size)
        return {}

    def step(
        self, exit_index: int, logits: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Decides which samples leave at one exit, without host-device synchronisation.

        Args:
            exit_index: Index of the exit that produced ``logits``.
            logits: ``[samples, classes]`` logits of the samples still in the network.
            state: The state from :meth:`initial_state` or the previous call.

        Returns:
            A ``[samples]`` bool mask (True = the sample leaves now; all True at the last exit)
            and the new state.

        Raises:
            ValueError: On an out-of-range exit index, logits that are not 2-D or whose number
                of classes differs from the recorded one.
        """
        check_step_args(exit_index, logits, self.num_exits)
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise ValueError(
                f"the policy was calibrated for {self.num_classes} classes but the logits have "
                f"{logits.shape[1]}"
            )
        if exit_index == self.num_exits - 1:
            return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device), dict(state)
        temperature = None if self._temperatures is None else self._temperatures[exit_index]
        with torch.no_grad():
            confidence = exit_confidences(logits, self._measure, temperature)
            leave = confidence >= self._thresholds[exit_index]
        return leave, dict(state)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description; infinite thresholds become the strings ``"inf"``/``"-inf"``.

        Always holds ``measure`` and ``thresholds``; ``temperatures``, ``num_classes``,
        ``cost_convention`` and ``input_size`` (``[H, W]``) only when set.
        """
        out: dict[str, Any] = {
            "measure": self._measure,
            "thresholds": [encode_threshold(t) for t in self._thresholds],
        }
        if self._temperatures is not None:
            out["temperatures"] = list(self._temperatures)
        for key, value in zip(
            ("num_classes", "cost_convention", "input_size"), self._context, strict=True
        ):
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EarlyExitPolicy:
        """Rebuilds a policy written by :meth:`to_dict`.

        Args:
            d: Mapping with ``"thresholds"`` and optionally ``"measure"`` (default
                ``"max_prob"``), ``"temperatures"``, ``"num_classes"``, ``"cost_convention"``
                and ``"input_size"``.

        Returns:
            The policy, equal to the one that was serialised.

        Raises:
            ValueError: If the mapping is malformed or holds a key outside
                :data:`POLICY_KEYS` (a ``"patience"`` measure belongs to
                :meth:`adanet.PatienceExitPolicy.from_dict`).
        """
        if not isinstance(d, Mapping) or "thresholds" not in d:
            raise ValueError(f"expected a mapping with a 'thresholds' entry, got {d!r}")
        check_keys(d, POLICY_KEYS, "policy")
        raw = d["thresholds"]
        if not isinstance(raw, list | tuple):
            raise ValueError(f"'thresholds' must be a list, got {raw!r}")
        measure = d.get("measure", "max_prob")
        if not isinstance(measure, str):
            raise ValueError(f"'measure' must be a string, got {measure!r}")
        try:
            return cls(
                [decode_threshold(t) for t in raw],
                measure=measure,
                temperatures=d.get("temperatures"),
                num_classes=d.get("num_classes"),
                cost_convention=d.get("cost_convention"),
                input_size=d.get("input_size"),
            )
        except TypeError as exc:
            raise ValueError(f"malformed policy mapping: {exc}") from None

    # ------------------------------------------------------------------ dunder

    def _key(self) -> tuple[object, ...]:
        return (self._measure, self._thresholds, self._temperatures, self._context)

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self._thresholds)
        if len(self._thresholds) == 1:
            inner += ","
        extra = "" if self._temperatures is None else f", temperatures={self._temperatures!r}"
        for key, value in zip(
            ("num_classes", "cost_convention", "input_size"), self._context, strict=True
        ):
            if value is not None:
                extra += f", {key}={value!r}"
        return f"EarlyExitPolicy(thresholds=({inner}), measure={self._measure!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EarlyExitPolicy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
