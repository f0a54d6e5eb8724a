"""``time_stream``: every way timed once per batch of a stream, after warm-up on other
batches, the ways taking turns going first; a repeated batch is refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from adanet.measure.timing import StreamTimes, time_stream


def _stream(count: int, size: int = 4) -> list[Tensor]:
    return [torch.full((size, 1), float(i)) for i in range(count)]


def test_warmup_batches_run_but_are_not_timed() -> None:
    calls: list[tuple[str, float]] = []

    def way(name: str):  # type: ignore[no-untyped-def]
        return lambda x: calls.append((name, float(x[0, 0])))

    batches = _stream(5)
    seen: list[tuple[str, float]] = []
    times = time_stream(
        {"a": way("a"), "b": way("b")},
        batches,
        warmup=2,
        on_result=lambda name, x, result: seen.append((name, float(x[0, 0]))),
    )
    assert times.warmup_batches == 2 and times.images == [4, 4, 4]
    assert all(len(values) == 3 for values in times.seconds.values())
    # Every batch ran through every way once, warm-up included, and was reported.
    assert sorted(calls) == sorted((name, float(i)) for i in range(5) for name in "ab")
    assert seen == calls
    # The ways take turns going first on the timed batches.
    firsts = [calls[2 * i][0] for i in range(2, 5)]
    assert firsts == ["a", "b", "a"]


def test_max_images_stops_after_whole_batches() -> None:
    times = time_stream({"a": lambda x: None}, _stream(10, size=3), warmup=1, max_images=7)
    assert times.images == [3, 3, 3] and times.num_images == 9


def test_a_repeated_batch_is_refused() -> None:
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="same batch tensor twice"):
        time_stream({"a": lambda b: None}, [x, torch.ones(2, 1), x])


def test_nothing_timed_gives_nan_and_no_stats() -> None:
    times = time_stream({"a": lambda x: None}, _stream(1), warmup=3)
    assert times.num_images == 0 and times.warmup_batches == 1
    assert math.isnan(times.per_image("a")) and times.stats("a") is None


def test_ratios_and_stats_by_hand() -> None:
    times = StreamTimes({"ee": [1.0, 3.0], "static": [2.0, 6.0]}, [4, 4], 1)
    assert times.ratio("ee", "static") == pytest.approx(0.5)
    assert times.per_image("static") == pytest.approx(1.0)
    stats = times.stats("ee")
    assert stats is not None and stats.num_batches == 2
    assert stats.images_per_second == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"runs": {}}, TypeError, "at least one way"),
        ({"warmup": -1}, ValueError, "warmup must be an int >= 0"),
        ({"max_images": 0}, ValueError, "max_images must be an int >= 1"),
        ({"batches": [[1, 2]]}, TypeError, "batch tensors"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], words: str) -> None:
    arguments: dict[str, object] = {"runs": {"a": lambda x: None}, "batches": _stream(2)}
    arguments.update(kwargs)
    with pytest.raises(error, match=words):
        time_stream(**arguments)  # type: ignore[arg-type]
