"""The demo's targets table, on hand-made metrics (the demo itself runs with ``make demo``)."""

from __future__ import annotations

from typing import Any

from conftest import load_example


def _wall(ratios: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    paths = [
        {
            "name": name,
            "points": [
                {"p": p, "macs_ratio": macs, "time_ratio": time}
                for p, (macs, time) in zip((0.45, 1.05), points, strict=True)
            ],
        }
        for name, points in ratios.items()
    ]
    return {"paths": paths, "p": 0.45, "recommended": "ONNX Runtime"}


def test_wall_time_targets_use_the_fastest_way_and_every_eager_one() -> None:
    demo = load_example("demo")
    wall = _wall(
        {
            "eager": [(0.28, 0.62), (0.62, 1.10)],
            "optimized": [(0.28, 0.60), (0.62, 0.90)],
            "ONNX Runtime": [(0.28, 0.40), (0.62, 0.70)],
        }
    )
    rows = demo.wall_time_targets(wall)
    assert [met for _, met, _ in rows] == [True, True, True, False]
    assert "fastest way: ONNX Runtime" in rows[0][0] and rows[0][2].startswith("0.40 ")
    # The excess of time over MACs: +0.12 at most for ONNX Runtime, +0.48 for eager.
    assert rows[2][2].startswith("+0.12 at most") and "eager +0.48" in rows[3][2]


def test_wall_time_targets_when_nothing_was_timed() -> None:
    demo = load_example("demo")
    ((_, met, measured),) = demo.wall_time_targets(None)
    assert not met and measured == "not timed"
