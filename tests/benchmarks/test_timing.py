"""The benchmarks' stream timing never times the same tensor twice and never times a
warm-up batch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _timing_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench_timing", BENCHMARKS / "_timing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_measure_stream_never_times_a_tensor_twice() -> None:
    timing = _timing_module()
    calls: dict[str, list[Tensor]] = {"a": [], "b": []}
    made: list[Tensor] = []

    def make(index: int) -> Tensor:
        batch = torch.full((2, 3), float(index))
        made.append(batch)
        return batch

    result = timing.measure_stream(
        {name: calls[name].append for name in calls},
        make,
        repeats=3,
        batches_per_repeat=4,
        warmup_batches=2,
    )
    assert len(made) == 2 + 3 * 4  # every batch made once, none reused
    for name, seen in calls.items():
        # Each way ran every batch once: warm-up, then the timed ones, all distinct tensors.
        assert [int(x[0, 0]) for x in seen] == list(range(14)), name
        assert len({id(x) for x in seen}) == len(seen)
        assert all(x is made[i] for i, x in enumerate(seen))
        assert len(result[name].seconds) == 3  # one sum per repeat of 4 timed batches


def test_measure_stream_refuses_a_stream_that_repeats_a_batch() -> None:
    timing = _timing_module()
    one = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same batch tensor twice"):
        timing.measure_stream({"a": lambda x: None}, lambda index: one, repeats=2)
