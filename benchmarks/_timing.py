"""Timing helpers shared by the benchmarks: warm-up, repeats, median and spread, and the CPU's
vector instruction set, so every script reports its numbers the same honest way."""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["Timing", "cpu_description", "measure", "vector_isa"]


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
