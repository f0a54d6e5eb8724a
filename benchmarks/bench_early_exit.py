"""Early-exit wall time against the MACs it spends (RANet CIFAR-10 configuration, CPU).

Prints, for batch 256, the time of ``model(x)`` (every exit for every sample) and of
``adanet.early_exit`` under two policies, measured side by side in one run on a stream of
distinct random batches (warm-up on other batches first; each batch timed once per way, the
ways taking turns going first; median [min–max] over the repeats of the paired ratios):

- 60% of the samples leave at the first exit, the rest at the last (about 50% of the MACs):
  target a time ratio of at most 0.55;
- nobody leaves early (100% of the MACs): target at most 1.15;

then the same 60% policy on the ``optimize_for_inference`` copy (target: at most 0.55 of its
own all-exit forward), and on that copy compiled with ``compile_for_early_exit``: the compile
time (the wall time of the compiling call and the first early exit, which compiles each part
lazily; target at most 120 s on 2 cores) and the speed against eager optimized early exit
(target at least 1.3x). ``--skip-compile`` leaves the compiled part out.

Run: ``.venv/bin/python benchmarks/bench_early_exit.py [--threads 2] [--batch 256]``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see examples/demo.py

import statistics
import time
from collections.abc import Callable

import torch
from _timing import Timing, cpu_description, measure_stream
from torch import Tensor

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.calibration import calibrate_shares


def paired(timings: dict[str, Timing], top: str, bottom: str) -> tuple[float, str]:
    ratios = [a / b for a, b in zip(timings[top].seconds, timings[bottom].seconds, strict=True)]
    median = statistics.median(ratios)
    return median, f"{median:.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-repeat", type=int, default=1, help="distinct batches per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up batches")
    parser.add_argument("--skip-compile", action="store_true", help="leave torch.compile out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = RANet(RANetConfig.preset("cifar10")).eval()
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    calibration = torch.randn(args.batch, 3, 32, 32)  # not in the timed stream
    with torch.inference_mode():
        logits = torch.stack(model(calibration))
    exits = model.num_exits
    half = calibrate_shares(logits, [0.6] + [0.0] * (exits - 2) + [0.4])
    never = EarlyExitPolicy([float("inf")] * exits)
    optimized = adanet.optimize_for_inference(model)

    def batch(index: int) -> Tensor:
        generator = torch.Generator().manual_seed(1000 + index)
        return torch.randn(args.batch, 3, 32, 32, generator=generator)

    ways: dict[str, Callable[[Tensor], object]] = {
        "all exits": model,
        "60% at exit 0": lambda x: adanet.early_exit(model, x, half, costs=costs),
        "nobody early": lambda x: adanet.early_exit(model, x, never, costs=costs),
        "optimized all exits": optimized,
        "optimized 60%": lambda x: adanet.early_exit(optimized, x, half, costs=costs),
    }
    with torch.inference_mode():
        share = adanet.early_exit(model, batch(10**6), half, costs=costs).mean_cost / costs[-1]
        timings = measure_stream(
            ways,
            batch,
            repeats=args.repeats,
            batches_per_repeat=args.per_repeat,
            warmup_batches=args.warmup,
        )
    print(f"RANet cifar10, batch {args.batch}, {args.threads} threads; {cpu_description()}")
    print(
        f"median [min-max] of {args.repeats} repeats of {args.per_repeat} distinct batch(es), "
        f"after {args.warmup} warm-up batches; time ratios paired per repeat"
    )
    for name, timing in timings.items():
        print(f"{name:22s}: {timing.ms()}")
    print(
        f"early_exit 60% at exit 0 / model(x): {paired(timings, '60% at exit 0', 'all exits')[1]}"
        f"  MACs ratio {share:.3f}  (target <= 0.55)"
    )
    print(
        f"early_exit nobody early / model(x): {paired(timings, 'nobody early', 'all exits')[1]}"
        "  MACs ratio 1.000  (target <= 1.15)"
    )
    print(
        "optimized early_exit 60% / optimized model(x): "
        f"{paired(timings, 'optimized 60%', 'optimized all exits')[1]}  MACs ratio {share:.3f}"
        "  (target <= 0.55)"
    )
    if not args.skip_compile:
        compiled_early(model, batch, half, costs, timings["optimized 60%"], args)


def compiled_early(
    model: RANet,
    batch: Callable[[int], Tensor],
    policy: EarlyExitPolicy,
    costs: list[float],
    eager: Timing,
    args: argparse.Namespace,
) -> None:
    """Compile an optimized copy for early exit; print its compile time and speed."""
    compiled = adanet.optimize_for_inference(model)
    start = time.perf_counter()
    adanet.deploy.compile_for_early_exit(compiled, batch(-1))
    with torch.inference_mode():
        adanet.early_exit(compiled, batch(-2), policy, costs=costs)
        seconds = time.perf_counter() - start
        early = measure_stream(
            {"compiled": lambda x: adanet.early_exit(compiled, x, policy, costs=costs)},
            lambda index: batch(10_000 + index),  # batches of its own
            repeats=args.repeats,
            batches_per_repeat=args.per_repeat,
            warmup_batches=args.warmup,
        )["compiled"]
    print(
        f"compiled early_exit 60%    : {early.ms()}  {eager.median / early.median:.2f}x eager "
        f"optimized (target >= 1.3; timed after it, not interleaved); compile {seconds:.0f} s "
        "(target <= 120)"
    )


if __name__ == "__main__":
    main()
