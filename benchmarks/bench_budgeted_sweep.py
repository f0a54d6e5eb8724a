"""Times ``adanet.budgeted_sweep`` against a per-sample Python loop of the same protocol.

The original RANet / MSDNet ``adaptive_inference.py`` calibrates and evaluates each budget
with Python loops over single samples. No copy of that code is kept here: the baseline below
is a plain loop implementation of the same greedy protocol, written for this benchmark, so the
speed-up shown is that of vectorising, not a re-measurement of the original scripts. Exactness
against the original itself is tested on its recorded output
(``tests/test_budgeted.py`` reads ``../shared/reference/cases/budgeted/visible.pt``).

The sweep runs the 39 budgets on 5,000 validation + 5,000 test random samples, 8 exits, 10
classes, with both, checks that they agree, and prints median [min-max] seconds and the
speed-up, with the CPU's vector ISA.

Usage::

    python benchmarks/bench_budgeted_sweep.py [--repeats 5] [--loop-points 39] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from _timing import cpu_description, measure
from torch import Tensor

from adanet import budgeted_sweep, geometric_exit_fractions

__all__ = ["loop_sweep", "main", "make_data"]

NUM_EXITS = 8
NUM_SAMPLES = 5000
NUM_CLASSES = 10
COSTS = [15e6, 31e6, 44e6, 60e6, 73e6, 89e6, 101e6, 118e6]


def make_data(seed: int) -> tuple[Tensor, Tensor]:
    """Random logits that grow more confident and more often right at later exits."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=gen)
    signal = torch.linspace(0.3, 3.0, NUM_EXITS).view(NUM_EXITS, 1, 1)
    onehot = torch.nn.functional.one_hot(targets, NUM_CLASSES).float().unsqueeze(0)
    logits = torch.randn(NUM_EXITS, NUM_SAMPLES, NUM_CLASSES, generator=gen) * 1.5
    return logits + signal * onehot, targets


def _loop_thresholds(confidence: list[list[float]], shares: Tensor) -> list[float]:
    """Greedy thresholds, one sample at a time: exit k takes the most confident
    ``floor(n * share_k)`` samples that no earlier exit took (the product in float32, as the
    protocol computes it)."""
    n = len(confidence[0])
    quotas = torch.floor(shares * n).tolist()
    taken = [False] * n
    thresholds = []
    for k in range(NUM_EXITS - 1):
        quota = quotas[k]
        threshold = math.inf
        seen = 0
        for i in sorted(range(n), key=lambda j: -confidence[k][j]):
            if not taken[i]:
                seen += 1
                if seen == quota:
                    threshold = confidence[k][i]
                    break
        for i in range(n):
            taken[i] = taken[i] or confidence[k][i] >= threshold
        thresholds.append(threshold)
    return [*thresholds, -math.inf]


def _loop_evaluate(
    confidence: list[list[float]], correct: list[list[bool]], thresholds: list[float]
) -> tuple[float, float]:
    """Accuracy and mean cost when every sample leaves at its first confident exit."""
    n = len(confidence[0])
    hits = 0
    cost = 0.0
    for i in range(n):
        for k in range(NUM_EXITS):
            if confidence[k][i] >= thresholds[k]:
                hits += correct[k][i]
                cost += COSTS[k]
                break
    return hits / n, cost / n


def loop_sweep(
    val_logits: Tensor, test_logits: Tensor, test_targets: Tensor, points: int = 39
) -> list[tuple[float, float]]:
    """(accuracy, mean cost) for p = 1/20 .. points/20, computed by per-sample loops."""
    val_conf = torch.softmax(val_logits, dim=2).amax(dim=2).tolist()
    test_probs = torch.softmax(test_logits, dim=2)
    test_conf = test_probs.amax(dim=2).tolist()
    correct = (test_probs.argmax(dim=2) == test_targets).tolist()
    out = []
    for p in range(1, points + 1):
        # float32 shares, as the protocol computes them, so both sides round alike
        shares = torch.tensor(geometric_exit_fractions(p / 20, NUM_EXITS), dtype=torch.float32)
        thresholds = _loop_thresholds(val_conf, shares)
        out.append(_loop_evaluate(test_conf, correct, thresholds))
    return out


def main() -> None:
    """Runs the benchmark and prints the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of budgeted_sweep")
    parser.add_argument(
        "--loop-points",
        type=int,
        default=39,
        help="budgets for the loop baseline (0 skips it; fewer are extrapolated to 39)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    val_logits, val_targets = make_data(seed=1)
    test_logits, test_targets = make_data(seed=2)

    def sweep() -> object:
        return budgeted_sweep(val_logits, val_targets, test_logits, test_targets, COSTS)

    timing = measure(sweep, args.repeats)
    records = budgeted_sweep(val_logits, val_targets, test_logits, test_targets, COSTS)
    print(
        f"budgeted_sweep: {len(records)} budgets, {NUM_SAMPLES} val + {NUM_SAMPLES} test samples, "
        f"{NUM_EXITS} exits, {NUM_CLASSES} classes, {args.threads} threads; {cpu_description()}"
    )
    print(f"  adanet budgeted_sweep: median [min-max] of {args.repeats}: {timing.ms()}")

    if args.loop_points <= 0:
        return
    points = min(args.loop_points, 39)
    start = time.perf_counter()
    baseline = loop_sweep(val_logits, test_logits, test_targets, points)
    loop_seconds = (time.perf_counter() - start) * 39 / points
    note = "" if points == 39 else f" ({points} budgets timed, extrapolated to 39)"
    print(f"  per-sample loop baseline (one run): {loop_seconds:.2f} s{note}")
    print(f"  speed-up over the loop: {loop_seconds / timing.median:.0f}x (median)")
    worst_acc = max(abs(r.accuracy - a) for r, (a, _) in zip(records, baseline, strict=False))
    worst_cost = max(abs(r.mean_cost - c) / c for r, (_, c) in zip(records, baseline, strict=False))
    print(
        f"  agreement over {points} budgets: max |accuracy diff| {100 * worst_acc:.4f} points, "
        f"max relative mean-cost diff {worst_cost:.2e}"
    )


if __name__ == "__main__":
    main()
