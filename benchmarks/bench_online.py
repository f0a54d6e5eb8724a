"""Early exit on a shifting stream: static thresholds, the online controller, per-batch budgets.

Measured on the trained digits-affine RANet of the demo (``--run DIR``: an ``adanet train``
folder such as ``runs/demo``; without it the demo's model is trained here first, with the
demo's exact arguments, about 4 minutes on 2 cores). Every
policy is calibrated on the validation views; the stream is made of fresh fixed views of the
held-out test digits (``--test-views`` per digit, 24 by default: 10,776 images), put in
alternating blocks of ``--block`` easy and hard images (split by exit 0's confidence,
``adanet.measure.shifted_stream``) and replayed from its all-exit logits
(``adanet.measure.evaluate_stream``: a controller's ``simulate`` is ``early_exit`` + ``observe``).

Printed, with the issue's targets:

1. cost mode (target ``--target-share`` of the last exit's MACs): mean cost over the stream,
   cost per window (all, and *settled*: leaving out the window after each switch), top-1, and
   the top-1 of static thresholds of the same family spending the same mean on this stream
   (interpolated over a sweep of the geometric family);
2. accuracy mode (``--eps``, ``--audit`` audited): disagreement with the last exit per window,
   the accuracy drop with labels, and the cost;
3. hard budgets: real ``early_exit(..., budget=B)`` on random batches with random ``B``, for
   several policies: batches over budget (must be 0);
4. overhead: real ``early_exit`` with the controller (plus ``observe``) against the same
   thresholds as a static policy, batch by batch, interleaved, on the stream's images.

Run: ``.venv/bin/python benchmarks/bench_online.py --run runs/demo [--threads 2] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see examples/demo.py

import itertools
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _timing import cpu_description

from adanet import EarlyExitPolicy, PatienceExitPolicy, early_exit
from adanet.calibration import (
    OnlineController,
    calibrate_for_cost,
    calibrate_risk,
    calibrate_shares,
    geometric_exit_fractions,
)
from adanet.calibration.online.audit import audit_mask
from adanet.cli.stream_report import RunLogits, load_run_model, run_logits
from adanet.measure import (
    PerBatchBudget,
    StreamEvaluation,
    StreamOrder,
    evaluate_stream,
    shifted_stream,
)
from adanet.policies import exit_confidences


def train_demo_model(where: Path) -> Path:
    """The demo's training run (examples/demo.py's arguments) into ``where``."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import demo  # the demo's exact command line

    from adanet.cli import main as adanet_main

    args = list(demo.ARGS)
    args[args.index("--save") + 1] = str(where)
    if adanet_main(args) != 0:
        raise SystemExit("training the demo model failed")
    return where


def static_accuracy_at(
    logits: RunLogits, stream: torch.Tensor, targets: torch.Tensor, mean_cost: float
) -> float:
    """Top-1 on the stream of static thresholds of the geometric family spending ``mean_cost``
    there, interpolated between the two nearest members of a sweep."""
    costs = torch.tensor(logits.costs, dtype=torch.float64)
    points = []
    for j in range(121):
        p = math.exp(math.log(1e-2) + j * (math.log(1e2) - math.log(1e-2)) / 120)
        policy = calibrate_shares(logits.calibration, geometric_exit_fractions(p, len(costs)))
        exits = policy.simulate(stream)
        right = stream[exits, torch.arange(stream.shape[1])].argmax(1) == targets
        points.append((float(costs[exits].mean()), float(right.double().mean())))
    points.sort()
    for (c0, a0), (c1, a1) in itertools.pairwise(points):
        if c0 <= mean_cost <= c1:
            return a0 if c1 == c0 else a0 + (a1 - a0) * (mean_cost - c0) / (c1 - c0)
    return math.nan


def _range(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def report_cost(
    evaluation: StreamEvaluation,
    target: float,
    logits: RunLogits,
    stream: torch.Tensor,
    targets: torch.Tensor,
) -> None:
    print(
        f"\nCost mode: target {target / 1e6:.3f} MMACs per image "
        f"({100 * target / logits.costs[-1]:.0f}% of the last exit)"
    )
    print(
        f"{'method':28s} {'mean/target':>11s} {'windows':>13s} {'settled':>13s} "
        f"{'top-1':>7s} {'static top-1 at same mean':>26s}"
    )
    for name, run in evaluation.runs.items():
        ratios = [w.mean_cost / target for w in run.windows]
        settled = [w.mean_cost / target for w in run.windows if w.settled]
        mean = run.summary["mean_cost"]
        same = static_accuracy_at(logits, stream, targets, mean)
        print(
            f"{name:28s} {mean / target:>11.4f} {_range(ratios):>13s} {_range(settled):>13s} "
            f"{100 * run.summary['accuracy']:>6.2f}% {100 * same:>25.2f}%"
        )


def report_drop(evaluation: StreamEvaluation, eps: float, full: float) -> None:
    print(f"\nAccuracy mode: disagreement with the last exit held at {eps}")
    print(
        f"{'method':28s} {'cost/last':>9s} {'disagree':>8s} {'worst win':>9s} "
        f"{'worst settled':>13s} {'worst settled drop (labels)':>28s} {'top-1':>7s}"
    )
    for name, run in evaluation.runs.items():
        s = run.summary
        drops = [w.accuracy_drop for w in run.windows if w.settled]
        print(
            f"{name:28s} {s['mean_cost'] / full:>9.3f} {s['disagreement']:>8.4f} "
            f"{s['max_window_disagreement']:>9.4f} {s['max_settled_window_disagreement']:>13.4f}"
            f" {max(drops):>28.4f} {100 * s['accuracy']:>6.2f}%"
        )


def hard_budgets(model: Any, images: torch.Tensor, logits: RunLogits, batches: int) -> None:
    """Real early exit with random budgets on random batches: batches over budget."""
    rng = random.Random(0)
    costs = logits.costs
    target = 0.45 * costs[-1]
    policies = {
        "static (cost)": calibrate_for_cost(logits.calibration, costs, target),
        "patience k=2": PatienceExitPolicy(2, len(costs)),
        "controller (cost)": OnlineController(logits.calibration, costs, target_cost=target),
        "controller (accuracy)": OnlineController(
            logits.calibration, costs, max_accuracy_drop=0.02
        ),
    }
    print(
        f"\nHard budgets: {batches} random batches (1-128 images) per policy, random B in "
        "[n * costs[0], n * costs[-1]]"
    )
    for name, policy in policies.items():
        over, worst, bound = 0, 0.0, 0
        for _ in range(batches):
            n = rng.randint(1, 128)
            start = rng.randint(0, images.shape[0] - n)
            budget = rng.uniform(n * costs[0], n * costs[-1])
            result = early_exit(model, images[start : start + n], policy, budget=budget)
            if isinstance(policy, OnlineController):
                policy.observe(result)
            spent = float(result.cost.sum())
            over += spent > budget
            worst = max(worst, spent / budget)
            free = early_exit(model, images[start : start + n], _frozen(policy))
            bound += float(free.cost.sum()) > budget
        print(
            f"  {name:24s} over budget: {over} of {batches} batches; largest spent/B "
            f"{worst:.4f}; budget bound in {bound}"
        )


def _frozen(policy: Any) -> Any:
    return policy.policy() if isinstance(policy, OnlineController) else policy


class AuditedStatic:
    """Fixed thresholds, and the given images sent to the last exit: the decisions of a
    controller for one batch, without its bookkeeping (the reference for its overhead)."""

    def __init__(self, policy: EarlyExitPolicy, audit: torch.Tensor) -> None:
        self.policy, self.audit, self.num_exits = policy, audit, policy.num_exits

    def initial_state(self, batch_size: int, device: Any = None) -> dict[str, torch.Tensor]:
        return {"audit": self.audit}

    def step(self, k: int, logits: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        leave, _ = self.policy.step(k, logits, {})
        return leave & ~state["audit"], state

    def simulate(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def overhead(
    model: Any,
    images: torch.Tensor,
    logits: RunLogits,
    settings: dict[str, Any],
    batch: int,
    repeats: int,
    count: int,
) -> dict[str, float]:
    """Time of each way to decide the same batches, over the static policy's.

    Each batch runs ``repeats`` times per way, ways interleaved; its time per way is the fastest
    run (a busy moment of a shared machine only ever slows a run down). The controller runs on
    copies of its state, so every repeat decides with the same thresholds; then it learns once.
    """
    controller = OnlineController(logits.calibration, logits.costs, **settings)
    totals = {"static": 0.0, "static + same audits": 0.0, "controller + observe": 0.0}
    for start in range(0, count, batch):
        x = images[start : start + batch]
        static = controller.policy()  # the thresholds this batch is decided with
        audit = audit_mask(
            controller.images_seen, x.shape[0], controller.audit_share, controller.seed
        )
        saved = controller.to_dict()
        best = dict.fromkeys(totals, math.inf)
        for _ in range(repeats):
            copy = OnlineController.from_dict(saved)
            ways: list[tuple[str, Any]] = [
                ("static", static),
                ("static + same audits", AuditedStatic(static, audit)),
                ("controller + observe", copy),
            ]
            for name, policy in ways:
                began = time.perf_counter()
                result = early_exit(model, x, policy, costs=logits.costs)
                if policy is copy:
                    copy.observe(result)
                best[name] = min(best[name], time.perf_counter() - began)
        controller = copy
        for name in totals:
            totals[name] += best[name]
    return {name: value / totals["static"] for name, value in totals.items()}


def cost_mode(args: argparse.Namespace, logits: RunLogits, order: StreamOrder) -> None:
    """Static thresholds, the controller at batch 1 and 32 and a per-batch budget."""
    stream, targets = logits.test[:, order.index], logits.test_targets[order.index]
    costs, cal = logits.costs, logits.calibration
    target = args.target_share * costs[-1]
    static = calibrate_for_cost(cal, costs, target)
    methods: dict[str, tuple[Any, int]] = {
        "static thresholds (batch 32)": (static, 32),
        "online controller (batch 1)": (OnlineController(cal, costs, target_cost=target), 1),
        "online controller (batch 32)": (OnlineController(cal, costs, target_cost=target), 32),
        "per-batch budget (batch 32)": (PerBatchBudget(static, target), 32),
    }
    runs = {
        name: evaluate_stream(
            stream,
            costs,
            {name: method},
            targets=targets,
            batch_size=batch,
            window=args.window,
            switches=order.switches,
            target_cost=target,
        ).runs[name]
        for name, (method, batch) in methods.items()
    }
    merged = StreamEvaluation(runs, 32, args.window, order.switches, math.nan)
    report_cost(merged, target, logits, stream, targets)


def accuracy_mode(args: argparse.Namespace, logits: RunLogits, order: StreamOrder) -> None:
    """Static thresholds for the same drop (label-free and with labels) and the controller."""
    stream, targets = logits.test[:, order.index], logits.test_targets[order.index]
    costs, cal, eps = logits.costs, logits.calibration, args.eps
    naive = calibrate_risk(
        cal, None, max_accuracy_drop=eps, against="last_exit", method="naive", costs=costs
    )
    ltt = calibrate_risk(cal, logits.calibration_targets, max_accuracy_drop=eps, costs=costs)
    methods: dict[str, tuple[Any, int]] = {
        "static, naive (last exit)": (naive, 32),
        "static, ltt (labels)": (ltt, 32),
    }
    for batch in (1, 32):
        controller = OnlineController(cal, costs, max_accuracy_drop=eps, audit_share=args.audit)
        methods[f"online controller (batch {batch})"] = (controller, batch)
    runs = {
        name: evaluate_stream(
            stream,
            costs,
            {name: method},
            targets=targets,
            batch_size=batch,
            window=args.window,
            switches=order.switches,
        ).runs[name]
        for name, (method, batch) in methods.items()
    }
    merged = StreamEvaluation(runs, 32, args.window, order.switches, math.nan)
    report_drop(merged, eps, costs[-1])


def overheads(
    args: argparse.Namespace, model: Any, images: torch.Tensor, logits: RunLogits
) -> None:
    print(
        "\nOverhead: time of early_exit deciding the same batches, over the static policy with "
        f"the same thresholds (fastest of {args.repeats} per batch)"
    )
    target = args.target_share * logits.costs[-1]
    for label, settings in (
        ("cost mode", {"target_cost": target}),
        ("accuracy mode", {"max_accuracy_drop": args.eps, "audit_share": args.audit}),
    ):
        for batch in (1, 32):
            count = args.overhead_images if batch > 1 else args.overhead_images // 4
            ratios = overhead(model, images, logits, settings, batch, args.repeats, count)
            shown = ", ".join(f"{name} {value:.3f}x" for name, value in ratios.items())
            print(f"  {label}, batch {batch} ({count} images): {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="an adanet train folder of the demo model")
    parser.add_argument("--test-views", type=int, default=24)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--target-share", type=float, default=0.45)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--audit", type=float, default=0.05)
    parser.add_argument("--budget-batches", type=int, default=200)
    parser.add_argument("--overhead-images", type=int, default=2048)
    parser.add_argument("--parts", default="cost,accuracy,budget,overhead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    print(cpu_description(), f"| {args.threads} threads")
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run
        if run is None:  # no run folder: train the demo's model here (about 4 minutes)
            run = train_demo_model(Path(scratch) / "demo")
        started = time.perf_counter()
        logits = run_logits(run, test_views=args.test_views)
        print(
            f"logits of {logits.calibration.shape[1]} validation and {logits.test.shape[1]} "
            f"test views in {time.perf_counter() - started:.1f} s"
        )
        order = shifted_stream(
            exit_confidences(logits.test[0], "max_prob"),
            block_size=args.block,
            num_blocks=args.blocks,
        )
        if "cost" in parts:
            cost_mode(args, logits, order)
        if "accuracy" in parts:
            accuracy_mode(args, logits, order)
        model = load_run_model(run)
        images = _stream_images(run, args.test_views, order.index)
        if "budget" in parts:
            hard_budgets(model, images, logits, args.budget_batches)
        if "overhead" in parts:
            overheads(args, model, images, logits)


def _stream_images(run: Path, test_views: int, index: torch.Tensor) -> torch.Tensor:
    import json

    from adanet.data.digits_affine import digits_affine_datasets

    seed = int(json.loads((run / "config.json").read_text(encoding="utf-8")).get("seed", 0))
    test = digits_affine_datasets(seed=seed, use_valid=True, test_views=test_views).test
    return test.images[index]


if __name__ == "__main__":
    main()
