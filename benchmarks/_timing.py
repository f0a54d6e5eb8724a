"""Timing helpers shared by the benchmarks: warm-up, repeats, median and spread, and the CPU's
vector instruction set, so every script reports its numbers the same honest way.

:func:`measure` times one call repeated (for work whose cost does not depend on its input:
a static forward, a compile); :func:`measure_stream` times ways of classifying side by side on
a stream of distinct batches, which is how anything involving early exit must be timed (its
cost depends on the batch, and kernel caches stay warm for a batch repeated)."""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor

from adanet.measure.timing import time_stream

__all__ = ["Timing", "cpu_description", "measure", "measure_stream", "vector_isa"]


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the timed repeats (warm-up calls excluded)."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)

    def ms(self) -> str:
        """``median [min–max] ms`` for a table cell."""
        return f"{self.median * 1e3:8.1f} [{self.best * 1e3:.1f}–{self.worst * 1e3:.1f}] ms"


def measure(
    fn: Callable[[], object],
    repeats: int = 7,
    warmup: int = 3,
    min_warmup_seconds: float = 0.0,
    sync: Callable[[], None] | None = None,
) -> Timing:
    """Times ``fn`` after warming it up.

    oneDNN picks and JIT-compiles its kernels on the first calls with a new shape, which run
    up to ~2x slower than later ones; timing them would understate throughput of everything
    measured after and overstate ratios to a cold reference. So ``fn`` runs ``warmup`` times,
    and keeps running until ``min_warmup_seconds`` have passed, before ``repeats`` timed calls.

    Args:
        fn: The work to time.
        repeats: Timed calls (at least 5 for a median with a meaningful spread).
        warmup: Untimed calls first.
        min_warmup_seconds: Keep warming up at least this long.
        sync: Called after each call before the clock stops (``torch.cuda.synchronize``).

    Returns:
        The timed repeats.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    wait = sync or (lambda: None)
    start = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - start < min_warmup_seconds:
        fn()
        wait()
        done += 1
    seconds = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        wait()
        seconds.append(time.perf_counter() - tick)
    return Timing(tuple(seconds))


def measure_stream(
    ways: Mapping[str, Callable[[Tensor], object]],
    make_batch: Callable[[int], Tensor],
    *,
    repeats: int = 5,
    batches_per_repeat: int = 8,
    warmup_batches: int = 4,
) -> dict[str, Timing]:
    """Times every way on a stream of distinct batches, side by side.

    Batch ``i`` of the stream is ``make_batch(i)`` (made when needed, never timed, and never
    reused): the first ``warmup_batches`` warm every way up untimed, then each of ``repeats``
    repeats times ``batches_per_repeat`` further batches, each way once per batch with the
    ways taking turns going first (:func:`adanet.measure.timing.time_stream`). No way is
    timed twice on the same tensor, so kernel caches see what a real stream gives them.

    Returns:
        Per way, the seconds of each repeat (the sum over its batches).
    """
    if repeats < 1 or batches_per_repeat < 1:
        raise ValueError("repeats and batches_per_repeat must be >= 1")
    total = warmup_batches + repeats * batches_per_repeat

    def stream() -> Iterator[Tensor]:
        for index in range(total):
            yield make_batch(index)

    times = time_stream(ways, stream(), warmup=warmup_batches)
    return {
        name: Timing(
            tuple(
                sum(seconds[start : start + batches_per_repeat])
                for start in range(0, len(seconds), batches_per_repeat)
            )
        )
        for name, seconds in times.seconds.items()
    }


def vector_isa() -> str:
    """The widest vector ISA this CPU offers to PyTorch's kernels, e.g. ``AVX512 (+AMX)``.

    ``torch.backends.cpu.get_cpu_capability`` says which ATen kernels are dispatched; AMX
    (used by oneDNN for bf16/int8 matrix work) is read from ``/proc/cpuinfo`` where present.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    extras = [name for name in ("amx_tile", "avx512_vnni", "avx_vnni") if name in flags]
    return capability + (f" (+{', '.join(extras)})" if extras else "")


def cpu_description() -> str:
    """Processor model, core count and vector ISA, for the header of every benchmark."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{model}, {cores} logical CPUs, vector ISA {vector_isa()}, torch {torch.__version__}"
