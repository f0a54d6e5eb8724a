"""The demo run by ``make demo``: train a small RANet on scikit-learn's digits on the CPU,
then evaluate it anytime and budgeted with real early exit.

It runs exactly what ``adanet train`` runs (``adanet.cli.main``), into a fresh ``runs/demo/``:
``metrics.json``, ``policies.json``, ``anytime.png``, ``budgeted.png``, ``config.json``,
``args.txt`` and the checkpoints. The same command line::

    adanet train --data digits --use-valid --save runs/demo -j 0 --epochs 16 \\
        --lr 0.1 --lr-type cosine --nBlocks 2 --nChannels 8 --growthRate 4 \\
        --grFactor 4-2-1 --bnFactor 4-2-1 --block-step 2 --scale-list 1-2-3 --step 2

Thresholds are calibrated on the held-out validation fifth of digits (``--use-valid``) and
every calibrated policy is then run for real on the test fifth.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a busy two-core machine spinning threads
# fight the ones doing work and small convolutions get ~20x slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import shutil
import sys
import time
from pathlib import Path

from adanet.cli import main as adanet_main

RUN = Path("runs/demo")

# A RANet narrower than the CIFAR preset (8 base channels, growth 4, 3 scales, 6 exits):
# about 17 MMACs per image at the last exit, so 16 epochs of digits take a minute or two on
# two CPU cores.
ARGS = [
    "train",
    "--data", "digits",
    "--use-valid",
    "--save", str(RUN),
    "-j", "0",
    "--seed", "0",
    "--epochs", "16",
    "--batch-size", "64",
    "--lr", "0.1",
    "--lr-type", "cosine",
    "--arch", "RANet",
    "--nBlocks", "2",
    "--nChannels", "8",
    "--growthRate", "4",
    "--grFactor", "4-2-1",
    "--bnFactor", "4-2-1",
    "--block-step", "2",
    "--scale-list", "1-2-3",
    "--step", "2",
    "--print-freq", "0",
]  # fmt: skip

FINAL_TARGET = 0.95  # test top-1 of the last exit
GAP_TARGET = 0.01  # budgeted accuracy within this of the last exit's ...
COST_TARGET = 0.60  # ... at no more than this share of the last exit's MACs


def main() -> int:
    """Train, evaluate, and check the demo's targets; returns the exit status."""
    if RUN.exists():
        shutil.rmtree(RUN)
    started = time.perf_counter()
    status = adanet_main(ARGS)
    if status != 0:
        return status
    elapsed = time.perf_counter() - started
    metrics = json.loads((RUN / "metrics.json").read_text(encoding="utf-8"))
    final = metrics["anytime"][-1]
    full = final["macs"]
    cheap = [
        row
        for row in metrics["budgeted"]
        if row["mean_macs"] <= COST_TARGET * full and row["accuracy"] >= final["top1"] - GAP_TARGET
    ]
    print(f"\nMACs follow the '{metrics['cost_convention']}' cost convention (see adanet.costs).")
    print(f"last exit: top-1 {100 * final['top1']:.2f}% at {full / 1e6:.2f} MMACs per image")
    ok_final = final["top1"] >= FINAL_TARGET
    print(f"target last-exit top-1 >= {100 * FINAL_TARGET:.0f}%: {'met' if ok_final else 'MISSED'}")
    if cheap:
        best = min(cheap, key=lambda row: row["mean_macs"])
        print(
            f"cheapest budget within {100 * GAP_TARGET:.0f} point of the last exit: "
            f"p={best['p']:.2f}, top-1 {100 * best['accuracy']:.2f}% at "
            f"{100 * best['mean_macs'] / full:.1f}% of its MACs, "
            f"{1e3 * best['seconds_per_image']:.3f} ms/image (real early exit)"
        )
    print(
        f"target: a budget within {100 * GAP_TARGET:.0f} point at <= {100 * COST_TARGET:.0f}% "
        f"of the MACs: {'met' if cheap else 'MISSED'}"
    )
    print(f"wrote {RUN}/ (metrics.json, anytime.png, budgeted.png) in {elapsed:.0f} s")
    return 0 if ok_final and cheap else 1


if __name__ == "__main__":
    sys.exit(main())
