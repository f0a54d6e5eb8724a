"""Early-exit wall time against the MACs it spends (RANet CIFAR-10 configuration, CPU).

Prints, for batch 256, the time of ``model(x)`` (every exit for every sample) and of
``adanet.early_exit`` under two policies, measured side by side in one run:

- 60% of the samples leave at the first exit, the rest at the last (about 50% of the MACs):
  the issue's target is a time ratio of at most 0.62;
- nobody leaves early (100% of the MACs): target at most 1.15;

then the same 60% policy on the ``optimize_for_inference`` copy (target: at most 0.62 of its
own all-exit forward), and on that copy compiled with ``compile_for_early_exit``: the compile
time (the wall time of the compiling call and the first early exit, which compiles each part
lazily; target at most 120 s on 2 cores) and the speed against eager optimized early exit
(target at least 1.3x). ``--skip-compile`` leaves the compiled part out.

Run: ``.venv/bin/python benchmarks/bench_early_exit.py [--threads 2] [--batch 256]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _timing import Timing, cpu_description, measure

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.calibration import calibrate_shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per item")
    parser.add_argument("--skip-compile", action="store_true", help="leave torch.compile out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = RANet(RANetConfig.preset("cifar10")).eval()
    x = torch.randn(args.batch, 3, 32, 32)
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    with torch.inference_mode():
        logits = torch.stack(model(x))
    exits = model.num_exits
    half = calibrate_shares(logits, [0.6] + [0.0] * (exits - 2) + [0.4])
    never = EarlyExitPolicy([float("inf")] * exits)

    def timed(fn: Callable[[], object]) -> Timing:
        return measure(fn, args.repeats, min_warmup_seconds=args.warmup)

    with torch.inference_mode():
        full = timed(lambda: model(x))
        result = adanet.early_exit(model, x, half, costs=costs)
        early = timed(lambda: adanet.early_exit(model, x, half, costs=costs))
        late = timed(lambda: adanet.early_exit(model, x, never, costs=costs))
        optimized = adanet.optimize_for_inference(model)
        optimized_full = timed(lambda: optimized(x))
        optimized_early = timed(lambda: adanet.early_exit(optimized, x, half, costs=costs))

    share = result.mean_cost / costs[-1]
    print(f"RANet cifar10, batch {args.batch}, {args.threads} threads; {cpu_description()}")
    print(f"median [min-max] of {args.repeats} warm runs")
    print(f"model(x), all exits        : {full.ms()}")
    print(
        f"early_exit 60% at exit 0   : {early.ms()}  time ratio {early.median / full.median:.3f}"
        f"  MACs ratio {share:.3f}  (target <= 0.62)"
    )
    print(
        f"early_exit nobody early    : {late.ms()}  time ratio {late.median / full.median:.3f}"
        "  MACs ratio 1.000  (target <= 1.15)"
    )
    print(f"optimized model(x)         : {optimized_full.ms()}")
    print(
        f"optimized early_exit 60%   : {optimized_early.ms()}  time ratio "
        f"{optimized_early.median / optimized_full.median:.3f}  MACs ratio {share:.3f}"
        "  (target <= 0.62)"
    )
    if not args.skip_compile:
        compiled_early(model, x, half, costs, optimized_early, timed)


def compiled_early(
    model: RANet,
    x: torch.Tensor,
    policy: EarlyExitPolicy,
    costs: list[float],
    eager: Timing,
    timed: Callable[[Callable[[], object]], Timing],
) -> None:
    """Compile an optimized copy for early exit; print its compile time and speed."""
    compiled = adanet.optimize_for_inference(model)
    start = time.perf_counter()
    adanet.deploy.compile_for_early_exit(compiled, x)
    with torch.inference_mode():
        adanet.early_exit(compiled, x, policy, costs=costs)
        seconds = time.perf_counter() - start
        early = timed(lambda: adanet.early_exit(compiled, x, policy, costs=costs))
    print(
        f"compiled early_exit 60%    : {early.ms()}  {eager.median / early.median:.2f}x eager "
        f"optimized (target >= 1.3); compile {seconds:.0f} s (target <= 120)"
    )


if __name__ == "__main__":
    main()
