"""Early exit on a stream of distinct batches: wall time against MACs, per bucket scheme.

The demo's trained digits model (``--run runs/demo``, an ``adanet train`` folder on
``digits-affine``; its ``policies.json`` holds the budget points) classifies its test images
in batches of ``--batch``. For each sub-batch bucket scheme of ``adanet.early_exit``
(``--schemes``) and each way of running the model (eager, ``optimize_for_inference``, and
with ``--onnx`` its ONNX Runtime stages), the time of early exit at each budget point is
measured against the static network run to its last exit (``adanet.run_to_exit``) on the
same batches: warm-up on other test batches, then ``--repeats`` repeats of
``--per-repeat`` distinct batches each, the ways taking turns batch by batch. Printed: the
median [min–max] over the repeats of the time ratio, next to two MACs ratios: against the last
exit's cumulative MACs (every head up to it, the budgeted table's "% of last exit") and against
the MACs of the static run itself (which skips the earlier heads, except in ONNX Runtime, whose
stages each hold their head).

Each scheme runs in a process of its own: oneDNN's kernel cache is per process, and a scheme
that fills it (``exact``) would slow the others down. Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
in the environment to see how a larger cache changes the picture (the script prints it).

Run: ``.venv/bin/python benchmarks/bench_stream.py --run runs/demo [--batch 64]
[--schemes exact,auto,pow2,half-octave,8] [--ps 0.45,1.05] [--onnx] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see examples/demo.py

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from _timing import cpu_description, measure_stream
from torch import Tensor

import adanet
from adanet import EarlyExitNetwork
from adanet.cli.wall_times import static_run_macs


def load_run(run: Path) -> tuple[EarlyExitNetwork, Tensor, dict[float, Any], list[float]]:
    """The run's model, its test images, its policies by ``p`` and its costs."""
    from adanet.cli.run_export import export_run
    from adanet.data import build_datasets
    from adanet.policies.serialization import policy_from_dict

    with tempfile.TemporaryDirectory() as folder:
        model = adanet.load_pretrained(export_run(run, Path(folder) / "model")).eval()
    config = json.loads((run / "config.json").read_text())
    splits = build_datasets(
        str(config["data"]), None, use_valid=bool(config["use_valid"]), seed=int(config["seed"])
    )
    images = torch.stack([splits.test[i][0] for i in range(len(splits.test))])
    stored = json.loads((run / "policies.json").read_text())
    policies = {float(e["p"]): policy_from_dict(e["policy"]) for e in stored["policies"]}
    return model, images, policies, [float(c) for c in stored["costs"]]


def ways(model: EarlyExitNetwork, onnx: bool, folder: Path) -> dict[str, EarlyExitNetwork]:
    built: dict[str, EarlyExitNetwork] = {
        "eager": model,
        "optimized": adanet.optimize_for_inference(model),
    }
    if onnx:
        from adanet.deploy.onnx import OnnxRuntimeNetwork, export_onnx

        export_onnx(model, folder / "onnx", tuple(int(v) for v in model.pretrained_cfg.input_size))
        built["ONNX Runtime"] = OnnxRuntimeNetwork(folder / "onnx")
    return built


def child(args: argparse.Namespace) -> None:
    """One scheme: print a JSON line of ratios per way and budget point."""
    torch.set_num_threads(args.threads)
    model, images, policies, costs = load_run(Path(args.run))
    ps = [min(policies, key=lambda p: abs(p - float(v))) for v in args.ps.split(",")]
    scheme: Any = int(args.child) if args.child.isdigit() else args.child
    batches = images.split(args.batch)
    needed = args.warmup + args.repeats * args.per_repeat
    if len(batches) < needed:
        raise SystemExit(f"{len(batches)} test batches of {args.batch}; {needed} needed")
    out: dict[str, Any] = {}
    image_shape = tuple(int(v) for v in images.shape[1:])
    static_macs = static_run_macs(model, image_shape)
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        for name, network in ways(model, args.onnx, Path(folder)).items():
            static_cost = costs[-1] if name == "ONNX Runtime" else static_macs
            runs = {"static": lambda x, n=network: adanet.run_to_exit(n, x, -1)}
            macs: dict[str, float] = {}
            for p in ps:
                policy = policies[p]
                runs[f"p={p}"] = lambda x, n=network, q=policy: adanet.early_exit(
                    n, x, q, costs=costs, buckets=scheme
                )
                result = adanet.early_exit(network, images[: args.batch * 8], policy, costs=costs)
                macs[f"p={p}"] = result.mean_cost
            timed = measure_stream(
                runs,
                lambda i: batches[i].clone(),  # a fresh tensor per batch, never reused
                repeats=args.repeats,
                batches_per_repeat=args.per_repeat,
                warmup_batches=args.warmup,
            )
            static = timed["static"].seconds
            per_image = args.per_repeat * args.batch
            out[name] = {
                "static_ms": 1e3 * statistics.median(static) / per_image,
                **{
                    key: {
                        "macs": macs[key] / costs[-1],
                        "static_macs": macs[key] / static_cost,
                        "ratios": [e / s for e, s in zip(timed[key].seconds, static, strict=True)],
                    }
                    for key in macs
                },
            }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an adanet train folder on digits-affine")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--schemes", default="exact,auto,pow2,half-octave,8")
    parser.add_argument("--ps", default="0.45,1.05", help="budget points (nearest in the run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-repeat", type=int, default=8, help="distinct batches per repeat")
    parser.add_argument("--warmup", type=int, default=4, help="warm-up batches")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime stages")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    cache = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "default (1024)")
    print(
        f"demo model ({args.run}), batch {args.batch}, {args.threads} threads; {cpu_description()}"
    )
    print(f"oneDNN primitive cache capacity: {cache}; time ratio = early exit / static last exit,")
    print(f"median [min-max] of {args.repeats} repeats of {args.per_repeat} distinct batches")
    passed = [a for a in sys.argv[1:]]
    for scheme in args.schemes.split(","):
        done = subprocess.run(
            [sys.executable, __file__, *passed, "--child", scheme],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        for name, values in result.items():
            cells = []
            for key, value in values.items():
                if key == "static_ms":
                    continue
                ratios = value["ratios"]
                cells.append(
                    f"{key}: MACs {value['macs']:.2f} / vs static {value['static_macs']:.2f}, "
                    f"time {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
                )
            print(
                f"{scheme:>12} {name:>13} static {values['static_ms']:.3f} ms/img | "
                + " | ".join(cells)
            )


if __name__ == "__main__":
    main()
