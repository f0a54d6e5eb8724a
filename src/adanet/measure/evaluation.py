"""Evaluation over a data loader: anytime accuracy per exit, and a policy run for real."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adanet._device import module_device
from adanet._validation import check_costs, check_targets, require_int
from adanet.calibration.temperature import expected_calibration_error
from adanet.costs.cache import exit_costs_for, resolve_convention
from adanet.costs.counting import Convention
from adanet.inference.buckets import BucketSpec
from adanet.inference.engine import EarlyExitResult, early_exit, run_to_exit
from adanet.measure.latency import LatencyStats
from adanet.measure.timing import time_stream
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider, check_policy, check_policy_fits, stack_logits

__all__ = [
    "AnytimeEvaluation",
    "AnytimeRecord",
    "PolicyEvaluation",
    "anytime_records",
    "evaluate_anytime",
    "evaluate_policy",
    "topk_accuracy",
    "topk_correct",
]

Batch = Sequence[Tensor]


@dataclass(frozen=True)
class AnytimeRecord:
    """Accuracy of one exit when every sample is classified there.

    Attributes:
        exit: The exit's index.
        macs: Cumulative cost of the exit per image.
        top1: Top-1 accuracy, a fraction in [0, 1].
        top5: Top-5 accuracy (top-k with k = min(5, classes)), a fraction in [0, 1].
        ece: Expected calibration error of the max-probability confidence (15 bins).
        ece_scaled: The same after dividing the logits by the given temperature; ``None``
            when no temperatures were given.
    """

    exit: int
    macs: float
    top1: float
    top5: float
    ece: float = float("nan")
    ece_scaled: float | None = None


@dataclass(frozen=True)
class AnytimeEvaluation:
    """The result of :func:`evaluate_anytime`.

    Attributes:
        records: One :class:`AnytimeRecord` per exit.
        logits: ``[exits, N, classes]`` on the CPU, for calibrating policies
            (:func:`adanet.budgeted_sweep`) without another pass.
        targets: ``[N]`` on the CPU.
    """

    records: list[AnytimeRecord]
    logits: Tensor
    targets: Tensor


@dataclass(frozen=True)
class PolicyEvaluation:
    """The result of running a policy for real with :func:`evaluate_policy`.

    Attributes:
        accuracy: Top-1 accuracy, a fraction in [0, 1].
        mean_cost: Mean cumulative cost paid per image.
        seconds_per_image: Wall time of the early-exit forward per image over the timed
            batches (data loading and the warm-up batches excluded; NaN when none was timed).
        exit_fractions: Share of the images that left at each exit.
        num_samples: Images evaluated.
        latency: Throughput and batch latency of :func:`adanet.early_exit` under the policy;
            ``None`` when no batch was timed.
        all_exits_latency: The same for the plain all-exit forward ``model(x)``, timed on the
            same batches in the same run; ``None`` with ``baselines=False``.
        last_exit_latency: The same for the network run to its last exit only (no earlier
            head): the static network one would otherwise deploy; ``None`` with
            ``baselines=False``.
    """

    accuracy: float
    mean_cost: float
    seconds_per_image: float
    exit_fractions: tuple[float, ...]
    num_samples: int
    latency: LatencyStats | None = None
    all_exits_latency: LatencyStats | None = None
    last_exit_latency: LatencyStats | None = None


def topk_correct(logits: Tensor, targets: Tensor, k: int) -> Tensor:
    """How many rows have their target among the ``k`` largest logits (k capped at the
    number of classes), as a 0-d tensor on the logits' device (no synchronisation). A row
    holding a NaN logit is never counted as correct."""
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
    hit = (top == targets.unsqueeze(-1)).any(dim=-1) & ~logits.isnan().any(dim=-1)
    return hit.sum()


def topk_accuracy(logits: Tensor, targets: Tensor, k: int) -> float:
    """Share of rows whose target is among the ``k`` largest logits (k capped at classes).

    Raises:
        TypeError, ValueError: On targets that are not ``[N]`` integer class indices in range.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        raise ValueError("logits must be a [N, classes] tensor")
    labels = check_targets(targets, logits.shape[0], logits.shape[1])
    return float(topk_correct(logits, labels.to(logits.device), k)) / max(1, logits.shape[0])


def anytime_records(
    logits: Tensor | Sequence[Tensor],
    targets: Tensor,
    costs: Sequence[float],
    temperatures: Sequence[float] | None = None,
) -> list[AnytimeRecord]:
    """Per-exit top-1/top-5 and calibration error from all-exit logits ``[exits, N, classes]``.

    Args:
        logits: ``[exits, N, classes]`` (or one tensor per exit).
        targets: ``[N]`` integer class indices in range.
        costs: Cumulative cost per exit.
        temperatures: Per-exit temperatures (e.g. from :func:`adanet.fit_temperatures` on
            held-out data); when given, each record's ``ece_scaled`` is filled in.

    Raises:
        TypeError, ValueError: On malformed logits, targets or costs.
    """
    stacked = stack_logits(logits)
    cost_values = check_costs(costs, stacked.shape[0])
    labels = check_targets(targets, stacked.shape[1], stacked.shape[2]).to(stacked.device)
    ece = expected_calibration_error(stacked, labels)
    scaled = (
        expected_calibration_error(stacked, labels, temperatures=temperatures)
        if temperatures is not None
        else [None] * stacked.shape[0]
    )
    num = max(1, stacked.shape[1])
    return [
        AnytimeRecord(
            exit=k,
            macs=cost_values[k],
            top1=float(topk_correct(stacked[k], labels, 1)) / num,
            top5=float(topk_correct(stacked[k], labels, 5)) / num,
            ece=ece[k],
            ece_scaled=scaled[k],
        )
        for k in range(stacked.shape[0])
    ]


def _unpack(batch: object) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, Sequence) or len(batch) < 2:
        raise TypeError(
            f"the loader must yield (images, targets) batches, got {type(batch).__name__}"
        )
    images, targets = batch[0], batch[1]
    if not isinstance(images, Tensor) or not isinstance(targets, Tensor):
        raise TypeError("the loader must yield (images, targets) pairs of tensors")
    return images, targets


def evaluate_anytime(
    model: EarlyExitNetwork,
    loader: Iterable[Batch],
    *,
    costs: Sequence[float] | None = None,
    convention: Convention = "actual",
    temperatures: Sequence[float] | None = None,
) -> AnytimeEvaluation:
    """Every exit's accuracy and calibration error over ``loader`` in one pass, in eval mode.

    Args:
        model: The network (its training flag is restored afterwards).
        loader: Yields ``(images, targets)`` batches; targets ``[B]`` integer class indices.
        costs: Per-exit cumulative costs; measured for the loader's image size if omitted.
        convention: Cost convention used when measuring.
        temperatures: Per-exit temperatures fitted on other data; the records then report the
            ECE before and after scaling.

    Returns:
        The per-exit records and the collected logits and targets.

    Raises:
        TypeError, ValueError: On malformed batches, targets or costs, or an empty loader.
    """
    device = module_device(model)
    was_training = model.training
    model.eval()
    all_logits: list[Tensor] = []
    all_targets: list[Tensor] = []
    image_shape: tuple[int, ...] | None = None
    try:
        with torch.no_grad():
            for batch in loader:
                images, targets = _unpack(batch)
                outputs = torch.stack([o.float() for o in model(images.to(device))]).cpu()
                check_targets(targets, outputs.shape[1], outputs.shape[2])
                image_shape = tuple(images.shape[1:])
                all_logits.append(outputs)
                all_targets.append(targets.cpu())
    finally:
        model.train(was_training)
    if image_shape is None:
        raise ValueError("the loader yielded no batches")
    if costs is None:
        costs = exit_costs_for(model, image_shape, convention).tolist()
    logits = torch.cat(all_logits, dim=1)
    targets_all = torch.cat(all_targets)
    records = anytime_records(logits, targets_all, costs, temperatures)
    return AnytimeEvaluation(records, logits, targets_all.long())


def evaluate_policy(
    model: EarlyExitNetwork,
    loader: Iterable[Batch],
    policy: ExitDecider,
    *,
    costs: Sequence[float] | None = None,
    convention: Convention | None = None,
    baselines: bool = True,
    buckets: BucketSpec = "auto",
    warmup_batches: int = 1,
) -> PolicyEvaluation:
    """Run ``policy`` for real (:func:`adanet.early_exit`) over ``loader``, and time it.

    Each batch is run with early exit under the policy and, with ``baselines``, also through
    the all-exit forward and through the network up to its last exit only (:func:`adanet.
    run_to_exit`), so the three throughputs and batch latencies come from the same run on the
    same batches (see :func:`adanet.measure.timing.time_stream`: the ways take turns going
    first). The first ``warmup_batches`` batches warm the kernels up: they are scored but not
    timed, so every time is of a batch no way has seen before, after warm-up on others.

    Args:
        model: The network, switched to eval mode for the run and restored afterwards.
        loader: Yields ``(images, targets)`` batches; targets ``[B]`` integer class indices.
        policy: Any :class:`adanet.ExitDecider` calibrated for this model.
        costs: Per-exit cumulative costs; measured if omitted.
        convention: Cost convention used when measuring; defaults to the policy's, else
            ``"actual"``.
        baselines: Also time the all-exit and the last-exit-only forward.
        buckets: Sub-batch sizes of early exit (see :func:`adanet.early_exit`).
        warmup_batches: Leading batches scored but not timed. When the loader yields no
            more than that, nothing is timed: ``seconds_per_image`` is NaN and the latencies
            are ``None``.

    Returns:
        Accuracy, mean cost, exit shares, and latency for the policy (and the baselines). A
        sample whose logits hold a NaN counts as wrong.

    Raises:
        TypeError: ``policy`` is not an :class:`adanet.ExitDecider`, or a batch is malformed.
        ValueError: The policy does not fit the model, bad targets or costs, or no samples.
    """
    policy = check_policy(policy)
    check_policy_fits(policy, num_exits=model.num_exits)
    require_int("warmup_batches", warmup_batches, 0)
    device = module_device(model)
    if costs is not None:
        costs = check_costs(costs, model.num_exits)
    else:
        convention = resolve_convention(policy, convention)
    runs: dict[str, Callable[[Tensor], object]] = {
        "policy": lambda x: early_exit(
            model, x, policy, costs=costs, convention=convention, buckets=buckets
        )
    }
    if baselines:
        runs["all"] = model
        runs["last"] = lambda x: run_to_exit(model, x, -1)
    score = _Score(model.num_exits)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            timed = time_stream(
                runs,
                score.images(loader, device),
                warmup=warmup_batches,
                device=device,
                on_result=score.add,
            )
    finally:
        model.train(was_training)
    if score.total == 0:
        raise ValueError("the loader yielded no samples")
    return PolicyEvaluation(
        accuracy=score.correct / score.total,
        mean_cost=score.cost_sum / score.total,
        seconds_per_image=timed.per_image("policy"),
        exit_fractions=tuple((score.counts.double() / score.total).tolist()),
        num_samples=score.total,
        latency=timed.stats("policy"),
        all_exits_latency=timed.stats("all") if baselines else None,
        last_exit_latency=timed.stats("last") if baselines else None,
    )


class _Score:
    """Accuracy, cost and exit counts of the early-exit results of a stream of batches."""

    def __init__(self, num_exits: int) -> None:
        self.correct, self.total, self.cost_sum = 0, 0, 0.0
        self.counts = torch.zeros(num_exits, dtype=torch.long)
        self._targets: dict[int, Tensor] = {}

    def images(self, loader: Iterable[Batch], device: torch.device) -> Iterator[Tensor]:
        """The loader's images on ``device``, remembering each batch's targets."""
        for batch in loader:
            images, targets = _unpack(batch)
            images = images.to(device, non_blocking=True)
            self._targets = {id(images): targets}
            yield images

    def add(self, name: str, images: Tensor, result: object) -> None:
        """Score an early-exit result (the baselines' results are only timed)."""
        if name != "policy":
            return
        assert isinstance(result, EarlyExitResult)
        targets = self._targets[id(images)]
        labels = check_targets(targets, result.logits.shape[0], result.logits.shape[1])
        self.correct += int(topk_correct(result.logits, labels.to(result.logits.device), 1))
        self.total += int(labels.shape[0])
        self.cost_sum += float(result.cost.sum())
        self.counts += torch.bincount(result.exit_index.cpu(), minlength=self.counts.numel())
