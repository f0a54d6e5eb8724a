"""Early-exit wall time against the MACs it spends (RANet CIFAR-10 configuration, CPU).

Prints, for batch 256, the time of ``model(x)`` (every exit for every sample) and of
``adanet.early_exit`` under two policies, measured side by side in one run:

- 60% of the samples leave at the first exit, the rest at the last (about 50% of the MACs):
  the issue's target is a time ratio of at most 0.62;
- nobody leaves early (100% of the MACs): target at most 1.15.

Run: ``.venv/bin/python benchmarks/bench_early_exit.py [--threads 2] [--batch 256]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, cost measurement caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = RANet(RANetConfig.preset("cifar10")).eval()
    x = torch.randn(args.batch, 3, 32, 32)
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    with torch.inference_mode():
        logits = torch.stack(model(x))
    exits = model.num_exits
    half = EarlyExitPolicy.calibrate(logits, [0.6] + [0.0] * (exits - 2) + [0.4])
    never = EarlyExitPolicy([float("inf")] * exits)

    with torch.inference_mode():
        full = best_of(lambda: model(x), args.repeats)
        result = adanet.early_exit(model, x, half, costs=costs)
        early = best_of(lambda: adanet.early_exit(model, x, half, costs=costs), args.repeats)
        late = best_of(lambda: adanet.early_exit(model, x, never, costs=costs), args.repeats)

    share = result.mean_cost / costs[-1]
    print(
        f"RANet cifar10, batch {args.batch}, {args.threads} threads, CPU (median of {args.repeats})"
    )
    print(f"model(x), all exits        : {full * 1e3:8.1f} ms")
    print(
        f"early_exit 60% at exit 0   : {early * 1e3:8.1f} ms  time ratio {early / full:.3f}  "
        f"MACs ratio {share:.3f}  (target <= 0.62)"
    )
    print(
        f"early_exit nobody early    : {late * 1e3:8.1f} ms  time ratio {late / full:.3f}  "
        "MACs ratio 1.000  (target <= 1.15)"
    )


if __name__ == "__main__":
    main()
