"""Timing on a stream of distinct batches: the one helper behind every wall-time figure.

Early exit's cost depends on the batch: which samples leave decides the sub-batch sizes of
every later stage, and kernel libraries build (and cache, up to a bound) a kernel per shape.
Timing one batch over and over measures a warm cache that a real stream of batches never
sees. :func:`time_stream` therefore runs every way of classifying (early exit, the static
network, ...) on each batch of a stream once, after warming up on the first batches of the
same stream, which are not timed:

* every timed batch is a different tensor, and no way sees a batch twice (a stream that
  yields the same tensor again is refused);
* the ways run one after the other on the same batch, their order rotating from batch to
  batch, so a busier moment of a shared machine, or the batch being in the CPU's cache
  after the first way, affects them alike;
* CUDA is synchronised around each timed call, so its time is real.

:func:`adanet.evaluate_policy`, :func:`adanet.measure_exit_latency` and the run report all
time through it.
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from adanet._validation import require_int

__all__ = ["LatencyStats", "StreamTimes", "latency_stats", "time_stream"]


@dataclass(frozen=True)
class LatencyStats:
    """Throughput and batch latency of one way of running a model over a loader.

    Attributes:
        images_per_second: Images divided by the summed batch times.
        p50_batch_seconds: Median time of one batch.
        p95_batch_seconds: 95th percentile (nearest rank) of the batch times.
        num_batches: Batches timed.
    """

    images_per_second: float
    p50_batch_seconds: float
    p95_batch_seconds: float
    num_batches: int


def latency_stats(batch_seconds: Sequence[float], num_images: int) -> LatencyStats:
    """Summarises per-batch wall times.

    Raises:
        ValueError: If there are no batch times.
    """
    if not batch_seconds:
        raise ValueError("latency_stats needs at least one batch time")
    ordered = sorted(batch_seconds)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    total = math.fsum(ordered)
    return LatencyStats(
        images_per_second=num_images / total if total > 0 else math.inf,
        p50_batch_seconds=statistics.median(ordered),
        p95_batch_seconds=ordered[rank - 1],
        num_batches=len(ordered),
    )


@dataclass(frozen=True)
class StreamTimes:
    """What :func:`time_stream` measured.

    Attributes:
        seconds: Per way, the wall time of each timed batch, in stream order.
        images: The number of images of each timed batch.
        warmup_batches: Batches run untimed first.
    """

    seconds: Mapping[str, list[float]]
    images: list[int] = field(default_factory=list)
    warmup_batches: int = 0

    @property
    def num_images(self) -> int:
        """Images timed (warm-up excluded)."""
        return sum(self.images)

    def per_image(self, name: str) -> float:
        """Seconds per image of one way over the timed batches (NaN when none was timed)."""
        total = self.num_images
        return sum(self.seconds[name]) / total if total else float("nan")

    def ratio(self, name: str, reference: str) -> float:
        """Total time of ``name`` over that of ``reference``, on the same batches."""
        base = sum(self.seconds[reference])
        return sum(self.seconds[name]) / base if base > 0 else float("nan")

    def stats(self, name: str) -> LatencyStats | None:
        """Throughput and batch latency of one way; ``None`` when no batch was timed."""
        return latency_stats(self.seconds[name], self.num_images) if self.images else None


def _synchronize(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stream(
    runs: Mapping[str, Callable[[Tensor], object]],
    batches: Iterable[Tensor],
    *,
    warmup: int = 1,
    max_images: int | None = None,
    device: torch.device | str | None = None,
    on_result: Callable[[str, Tensor, object], None] | None = None,
) -> StreamTimes:
    """Time each way of ``runs`` on every batch of a stream, after warming up on its first.

    Args:
        runs: Named ways of processing a batch (``{"early exit": ..., "static": ...}``).
        batches: The stream; each item a batch tensor (moved nowhere: put it on the device
            first). A tensor that appears twice is refused.
        warmup: How many leading batches every way runs untimed.
        max_images: Stop once this many images have been timed (whole batches); ``None``
            times the whole stream.
        device: Where the runs compute, for synchronisation (CUDA); ``None`` infers it from
            each batch.
        on_result: Called with ``(name, batch, result)`` after every run, warm-up included
            (to score the results without running anything twice).

    Returns:
        The per-batch times of every way.

    Raises:
        TypeError: ``runs`` is empty or an item of the stream is not a tensor.
        ValueError: A batch appears twice, or bad ``warmup`` / ``max_images``.
    """
    if not runs:
        raise TypeError("time_stream needs at least one way to time")
    require_int("warmup", warmup, 0)
    if max_images is not None:
        require_int("max_images", max_images, 1)
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    images: list[int] = []
    seen: dict[int, weakref.ref[Tensor]] = {}
    warmed = 0
    for index, batch in enumerate(batches):
        _check_fresh(batch, seen)
        sync = torch.device(device) if device is not None else batch.device
        timed = index >= warmup
        turn = (index - warmup) % len(names) if timed else 0
        for name in names[turn:] + names[:turn]:
            _synchronize(sync)
            start = time.perf_counter()
            result = runs[name](batch)
            _synchronize(sync)
            if timed:
                seconds[name].append(time.perf_counter() - start)
            if on_result is not None:
                on_result(name, batch, result)
        if not timed:
            warmed += 1
            continue
        images.append(int(batch.shape[0]))
        if max_images is not None and sum(images) >= max_images:
            break
    return StreamTimes(seconds, images, warmed)


def _check_fresh(batch: object, seen: dict[int, weakref.ref[Tensor]]) -> None:
    """Refuse a tensor the stream already yielded (one still alive: a freed batch's memory
    may be reused by a new one, which is a different batch)."""
    if not isinstance(batch, Tensor):
        raise TypeError(f"the stream must yield batch tensors, got {type(batch).__name__}")
    earlier = seen.get(id(batch))
    if earlier is not None and earlier() is batch:
        raise ValueError(
            "the stream yielded the same batch tensor twice: time a stream of distinct "
            "batches (one batch repeated keeps every kernel cache warm and flatters early exit)"
        )
    seen[id(batch)] = weakref.ref(batch)
