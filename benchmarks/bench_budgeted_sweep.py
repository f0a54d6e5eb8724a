"""Times adanet.budgeted.budgeted_sweep against a transcription of the reference loops.

The reference (RANet / MSDNet ``adaptive_inference.py``) calibrates and evaluates each budget
with per-sample Python loops over tensor elements. This benchmark runs the 39-point sweep on
5,000 validation + 5,000 test random samples, 8 exits, 10 classes, with both implementations,
checks that they agree, and prints the seconds and the speed-up.

Usage::

    python benchmarks/bench_budgeted_sweep.py [--repeats 5] [--oracle-points 39] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

from adanet.budgeted import budgeted_sweep

__all__ = ["main", "make_data", "reference_sweep"]

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


def _find_threshold(probs: Tensor, shares: Tensor) -> Tensor:
    """Transcription of Tester.dynamic_eval_find_threshold's threshold search, tensor indexing
    per element as in the reference (its accuracy pass on the validation set is left out)."""
    n_stage, n_sample, _ = probs.size()
    max_preds, _ = probs.max(dim=2, keepdim=False)
    _, sorted_idx = max_preds.sort(dim=1, descending=True)
    filtered = torch.zeros(n_sample)
    thresholds = torch.empty(n_stage).fill_(1e8)
    for k in range(n_stage - 1):
        count = 0
        out_n = math.floor(n_sample * shares[k])
        for i in range(n_sample):
            ori_idx = sorted_idx[k][i]
            if filtered[ori_idx] == 0:
                count += 1
                if count == out_n:
                    thresholds[k] = max_preds[k][ori_idx]
                    break
        filtered.add_(max_preds[k].ge(thresholds[k]).type_as(filtered))
    thresholds[n_stage - 1] = -1e8
    return thresholds


def _with_threshold(
    probs: Tensor, targets: Tensor, flops: list[float], thresholds: Tensor
) -> tuple[float, float]:
    """Transcription of Tester.dynamic_eval_with_threshold: (accuracy in %, expected flops)."""
    n_stage, n_sample, _ = probs.size()
    max_preds, argmax_preds = probs.max(dim=2, keepdim=False)
    exp = torch.zeros(n_stage)
    acc = 0
    for i in range(n_sample):
        gold_label = targets[i]
        for k in range(n_stage):
            if max_preds[k][i].item() >= thresholds[k]:
                if int(gold_label.item()) == int(argmax_preds[k][i].item()):
                    acc += 1
                exp[k] += 1
                break
    expected_flops = 0.0
    for k in range(n_stage):
        expected_flops += float(exp[k] * 1.0 / n_sample) * flops[k]
    return acc * 100.0 / n_sample, expected_flops


def reference_sweep(
    val_logits: Tensor, test_logits: Tensor, test_targets: Tensor, points: int = 39
) -> list[tuple[float, float]]:
    """The reference dynamic_evaluate loop for p = 1/20 .. points/20."""
    val_probs = torch.softmax(val_logits, dim=2)
    test_probs = torch.softmax(test_logits, dim=2)
    out = []
    for p in range(1, points + 1):
        p_t = torch.empty(1).fill_(p * 1.0 / 20)
        shares = torch.exp(torch.log(p_t) * torch.arange(1, NUM_EXITS + 1, dtype=torch.float32))
        shares /= shares.sum()
        thresholds = _find_threshold(val_probs, shares)
        out.append(_with_threshold(test_probs, test_targets, COSTS, thresholds))
    return out


def main() -> None:
    """Runs the benchmark and prints the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of budgeted_sweep")
    parser.add_argument(
        "--oracle-points",
        type=int,
        default=39,
        help="budgets for the reference loops (0 skips them; fewer are extrapolated to 39)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    val_logits, val_targets = make_data(seed=1)
    test_logits, test_targets = make_data(seed=2)

    budgeted_sweep(val_logits, val_targets, test_logits, test_targets, COSTS)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        records = budgeted_sweep(val_logits, val_targets, test_logits, test_targets, COSTS)
        times.append(time.perf_counter() - start)
    ours = min(times)
    print(
        f"budgeted_sweep: {len(records)} budgets, {NUM_SAMPLES} val + {NUM_SAMPLES} test samples, "
        f"{NUM_EXITS} exits, {NUM_CLASSES} classes, {args.threads} threads"
    )
    print(
        f"  adanet budgeted_sweep: best {ours:.4f} s, median {sorted(times)[len(times) // 2]:.4f} s"
    )

    if args.oracle_points <= 0:
        return
    points = min(args.oracle_points, 39)
    start = time.perf_counter()
    reference = reference_sweep(val_logits, test_logits, test_targets, points)
    ref_seconds = time.perf_counter() - start
    ref_full = ref_seconds * 39 / points
    note = "" if points == 39 else f" ({points} budgets timed, extrapolated to 39)"
    print(f"  reference loops:       {ref_full:.2f} s{note}")
    print(f"  speed-up:              {ref_full / ours:.0f}x")

    worst_acc = max(
        abs(100 * r.accuracy - a) for r, (a, _) in zip(records, reference, strict=False)
    )
    worst_cost = max(
        abs(r.mean_cost - c) / c for r, (_, c) in zip(records, reference, strict=False)
    )
    print(
        f"  agreement over {points} budgets: max |accuracy diff| {worst_acc:.4f} points, "
        f"max relative mean-cost diff {worst_cost:.2e}"
    )


if __name__ == "__main__":
    main()
