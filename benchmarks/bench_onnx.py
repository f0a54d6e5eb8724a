"""ONNX Runtime early exit against eager ``early_exit`` (RANet CIFAR-10 configuration, CPU).

Exports the model with ``adanet.export_onnx`` and times, side by side at batch 1, 16 and 256:

- ``adanet.early_exit`` on the plain model and on ``optimize_for_inference(model)``;
- ``EarlyExitSession.run`` (ONNX Runtime, CPU execution provider) from the exported files;

under two policies: 60% of the samples leave at exit 0 (the rest at the last exit), and nobody
leaves early. Each timing is the median of ``--repeats`` runs after ``--warmup`` runs, with the
min-max range; the ratios are ONNX Runtime time over eager time (below 1: ONNX Runtime is
faster). ONNX Runtime fuses BatchNorm into the convolutions itself, so the plain model is
exported.

Needs the ``onnx`` extra. Run: ``.venv/bin/python benchmarks/bench_onnx.py [--threads 2]
[--repeats 5]``; ``--tiny`` uses a small RANet to check the script quickly.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from _timing import Timing, cpu_description, measure

import adanet
from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.calibration import calibrate_shares
from adanet.deploy.onnx import EarlyExitSession, export_onnx


def show(label: str, value: Timing) -> str:
    return f"{label} {value.median * 1e3:9.2f} ms [{value.best * 1e3:.2f}-{value.worst * 1e3:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,16,256", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per item")
    parser.add_argument("--tiny", action="store_true", help="a small RANet (smoke test)")
    args = parser.parse_args()
    if args.repeats < 5 or args.warmup < 0:
        parser.error("--repeats must be >= 5 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]

    config = (
        RANetConfig(num_blocks=1, block_step=1, step=1)
        if args.tiny
        else RANetConfig.preset("cifar10")
    )
    model = RANet(config).eval()
    optimized = adanet.optimize_for_inference(model)
    exits = model.num_exits
    calibration = torch.randn(256, 3, 32, 32)
    with torch.inference_mode():
        logits = torch.stack(model(calibration))
    policies = {
        "60% at exit 0": calibrate_shares(logits, [0.6] + [0.0] * (exits - 2) + [0.4]),
        "nobody early": EarlyExitPolicy([float("inf")] * exits),
    }
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]

    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        export_onnx(model, directory, 32)
        print(f"exported {exits} stages in {time.perf_counter() - start:.1f} s")
        sessions = {
            name: EarlyExitSession(directory, policy=policy.to_dict(), threads=args.threads)
            for name, policy in policies.items()
        }
        print(
            f"RANet {'tiny' if args.tiny else 'cifar10'}, {args.threads} threads, median of "
            f"{args.repeats} after {args.warmup:g} s of warm-up [min-max]; {cpu_description()}"
        )
        for batch in batches:
            x = torch.randn(batch, 3, 32, 32)
            images = x.numpy()
            for name, policy in policies.items():
                session = sessions[name]
                with torch.inference_mode():
                    plain = measure(
                        lambda p=policy, x=x: adanet.early_exit(model, x, p, costs=costs),
                        args.repeats,
                        min_warmup_seconds=args.warmup,
                    )
                    fast = measure(
                        lambda p=policy, x=x: adanet.early_exit(optimized, x, p, costs=costs),
                        args.repeats,
                        min_warmup_seconds=args.warmup,
                    )
                ort = measure(
                    lambda s=session, i=images: s.run(i),
                    args.repeats,
                    min_warmup_seconds=args.warmup,
                )
                share = float(session.run(images)["cost"].mean()) / costs[-1]
                print(
                    f"batch {batch:>3}, {name:<13} (MACs {share:5.1%}): "
                    f"{show('eager', plain)}  {show('optimized', fast)}  {show('ORT', ort)}  "
                    f"ORT/eager {ort.median / plain.median:.2f}  "
                    f"ORT/optimized {ort.median / fast.median:.2f}"
                )


if __name__ == "__main__":
    main()
