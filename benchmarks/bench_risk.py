"""How often each calibration method breaks its promise, and what it costs.

Fixed all-exit logits (synthetic, early exits often right; or ``--logits FILE`` holding a
``(logits [exits, N, classes], targets [N])`` tuple saved with ``torch.save``, e.g. from
``adanet.evaluate_anytime`` on a trained network) are split at random into calibration and
test halves. For each method of ``adanet.calibration.calibrate_risk`` it prints the share of
splits where
the test accuracy drop exceeded eps, the mean drop, and the mean cost relative to the last exit.
``ltt`` promises a violation rate of at most delta, ``crc`` a mean drop of at most eps;
``naive`` promises nothing.

Run: ``python benchmarks/bench_risk.py [--splits 500] [--eps 0.02] [--delta 0.1]``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

import adanet

COSTS = [1.0, 2.0, 3.0, 4.0, 5.0]


def synthetic(num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 10, (num_samples,), generator=gen)
    onehot = torch.nn.functional.one_hot(targets, 10).float()
    ease = torch.rand(num_samples, generator=gen) * 3.0
    strength = torch.tensor([0.8, 1.2, 1.6, 2.0, 2.4]).view(5, 1, 1)
    noise = torch.randn(5, num_samples, 10, generator=gen)
    return 2.0 * (noise + strength * ease.view(1, -1, 1) * onehot), targets


def run(logits: Tensor, targets: Tensor, costs: list[float], args: argparse.Namespace) -> None:
    num = logits.shape[1]
    right = logits.argmax(dim=2) == targets
    cost_t = torch.tensor(costs, dtype=torch.float64)
    print(f"{num} samples, {logits.shape[0]} exits, eps={args.eps}, delta={args.delta}")
    print(
        f"{'method':>7}  {'violations':>10}  {'mean drop':>9}  {'cost vs last':>12}  {'s/call':>7}"
    )
    for method in ("ltt", "crc", "naive"):
        gen = torch.Generator().manual_seed(args.seed)
        drops, spent, elapsed = [], [], 0.0
        for _ in range(args.splits):
            order = torch.randperm(num, generator=gen)
            cal, test = order[: num // 2], order[num // 2 :]
            start = time.perf_counter()
            policy = adanet.calibration.calibrate_risk(
                logits[:, cal],
                targets[cal],
                max_accuracy_drop=args.eps,
                delta=args.delta,
                method=method,
                costs=costs,
            )
            elapsed += time.perf_counter() - start
            exits = policy.simulate(logits[:, test])
            chosen = right[exits, test].double().mean()
            drops.append(float(right[-1, test].double().mean() - chosen))
            spent.append(float(cost_t[exits].mean()) / costs[-1])
        violations = sum(d > args.eps for d in drops) / args.splits
        print(
            f"{method:>7}  {violations:10.3f}  {sum(drops) / len(drops):9.4f}  "
            f"{sum(spent) / len(spent):12.3f}  {elapsed / args.splits:7.4f}"
        )
    allowance = 2 * math.sqrt(args.delta * (1 - args.delta) / args.splits)
    ltt_target, crc_target = args.delta + allowance, args.eps + 0.002
    print(f"ltt target: violations <= {ltt_target:.3f}; crc: mean drop <= {crc_target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logits", help="torch.save'd (logits, targets) of a trained network")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.logits:
        logits, targets = torch.load(args.logits, weights_only=True)
        costs = [float(k + 1) for k in range(logits.shape[0])]
    else:
        logits, targets = synthetic(2000, seed=0)
        costs = COSTS
    run(logits, targets, costs, args)


if __name__ == "__main__":
    main()
