"""int8 early exit on the CPU (``adanet.deploy.quantize_for_inference``) against the fp32
optimized model.

Two models, each timed side by side in one run at batch 1, 64 and 256:

- the trained digits model of the demo (``--run DIR``: an ``adanet train`` folder on
  ``digits-affine``; without it a copy of the demo is trained here for ``--epochs`` epochs);
- the RANet CIFAR-10 configuration with random weights (speed, and the share of random inputs
  on which the int8 and fp32 top-1 agree at each exit).

Three implementations of the same network:

- ``fp32 opt``: ``adanet.optimize_for_inference(model)`` (eager PyTorch, BN folded,
  channels-last), the reference of every ratio;
- ``ORT fp32``: the fp32 ONNX stages of ``adanet.export_onnx`` in ONNX Runtime
  (``adanet.deploy.onnx.OnnxRuntimeNetwork``), to show how much of the gain is ONNX Runtime and how
  much is int8;
- ``ORT int8``: what ``quantize_for_inference`` returns (the same stages, quantized).

Each is timed for the all-exit forward (``model(x)``) and for ``adanet.early_exit`` under a
policy that sends about 60% of the samples out at exit 0 (the rest at the last exit),
calibrated on the fp32 logits. Every timing is the median of ``--repeats`` runs after warm-up,
with the min-max range; ratios are fp32-opt time over the other's (above 1: faster than
fp32 opt), and the last column is ORT fp32 time over ORT int8 time (the gain of int8 alone).
For the digits model it also prints every exit's test top-1 in fp32 and int8.

Needs the ``onnx`` and ``digits`` extras. Run: ``.venv/bin/python benchmarks/bench_int8.py
[--run runs/demo] [--threads 2] [--repeats 5] [--models digits,cifar]``; ``--tiny`` uses
small models and skips the training (a quick check of the script).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see examples/demo.py

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import Timing, cpu_description, measure

import adanet
from adanet import EarlyExitNetwork, EarlyExitPolicy, RANet, RANetConfig
from adanet.calibration import calibrate_shares
from adanet.deploy.onnx import OnnxRuntimeNetwork, export_onnx, quantize_onnx

BATCHES = (1, 64, 256)
CALIBRATION_IMAGES = 256
DEMO_ARGS = [
    "--data", "digits-affine", "--use-valid", "-j", "0", "--seed", "0",
    "--batch-size", "64", "--lr", "0.1", "--lr-type", "cosine", "--arch", "RANet",
    "--nBlocks", "2", "--nChannels", "8", "--growthRate", "4", "--grFactor", "1-2-1",
    "--bnFactor", "1-2-1", "--block-step", "2", "--scale-list", "1-2-3", "--step", "2",
    "--print-freq", "0", "--budget-stride", "39",
]  # fmt: skip


def train_digits(epochs: int, where: Path) -> Path:
    from adanet.cli import main as adanet_main

    save = where / "digits-run"
    code = adanet_main(["train", "--save", str(save), "--epochs", str(epochs), *DEMO_ARGS])
    if code:
        raise SystemExit(f"training the digits model failed with exit status {code}")
    return save


def load_run(run: Path, where: Path) -> EarlyExitNetwork:
    from adanet.cli.run_export import export_run

    model = adanet.load_pretrained(export_run(run, where / "model"))
    return model.eval()


def digits_splits(run: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Calibration images from the training split, and the test images and labels."""
    from adanet.data import build_datasets

    config = json.loads((run / "config.json").read_text())
    splits = build_datasets(
        str(config["data"]), None, use_valid=bool(config["use_valid"]), seed=int(config["seed"])
    )
    generator = torch.Generator().manual_seed(0)
    picks = torch.randperm(len(splits.train), generator=generator)[:CALIBRATION_IMAGES]
    calibration = torch.stack([splits.train[int(i)][0] for i in picks])
    test = [splits.test[i] for i in range(len(splits.test))]
    images = torch.stack([image for image, _ in test])
    labels = torch.tensor([int(label) for _, label in test])
    return calibration, images, labels


def build(
    model: EarlyExitNetwork, calibration: torch.Tensor, where: Path, threads: int
) -> tuple[OnnxRuntimeNetwork, OnnxRuntimeNetwork, float, float]:
    """The ORT fp32 and int8 networks, and the export and quantization seconds.

    ``quantize_for_inference`` is exactly export_onnx + quantize_onnx + OnnxRuntimeNetwork; the
    steps are called one by one here so the fp32 stages can be timed too.
    """
    shape = tuple(int(v) for v in calibration.shape[1:])
    tick = time.perf_counter()
    export_onnx(model, where / "fp32", shape)
    exported = time.perf_counter() - tick
    tick = time.perf_counter()
    quantize_onnx(where / "fp32", where / "int8", calibration.split(64), threads=threads)
    quantized = time.perf_counter() - tick
    fp32 = OnnxRuntimeNetwork(where / "fp32", threads=threads)
    int8 = OnnxRuntimeNetwork(where / "int8", threads=threads)
    return fp32, int8, exported, quantized


def policy_60_at_exit_0(logits: list[torch.Tensor]) -> EarlyExitPolicy:
    exits = len(logits)
    return calibrate_shares(logits, [0.6] + [0.0] * (exits - 2) + [0.4])


def show(value: Timing) -> str:
    return f"{value.median * 1e3:8.2f} [{value.best * 1e3:.2f}-{value.worst * 1e3:.2f}]"


def time_models(
    models: dict[str, EarlyExitNetwork],
    pool: torch.Tensor,
    policy: EarlyExitPolicy,
    args: argparse.Namespace,
) -> None:
    names = list(models)
    print(
        f"  {'batch':>5} {'mode':<10} "
        + " ".join(f"{name + ' ms':>24}" for name in names)
        + "   "
        + " ".join(f"{'opt/' + name:>14}" for name in names[1:])
        + f" {names[1] + '/' + names[-1]:>18}"
    )
    speedups: list[tuple[float, int, str]] = []
    for batch in BATCHES:
        x = pool[:batch].contiguous()
        runs: dict[str, dict[str, Callable[[], object]]] = {}
        for name, model in models.items():
            runs[name] = {
                "all exits": lambda m=model, x=x: m(x),
                "early exit": lambda m=model, x=x: adanet.early_exit(m, x, policy),
            }
        for mode in ("all exits", "early exit"):
            timings: dict[str, Timing] = {}
            with torch.inference_mode():
                for name in names:
                    timings[name] = measure(
                        runs[name][mode], repeats=args.repeats, min_warmup_seconds=args.warmup
                    )
            reference = timings[names[0]].median
            speedups.append((reference / timings[names[-1]].median, batch, mode))
            print(
                f"  {batch:>5} {mode:<10} "
                + " ".join(f"{show(timings[name]):>24}" for name in names)
                + "   "
                + " ".join(f"{reference / timings[name].median:>13.2f}x" for name in names[1:])
                + f" {timings[names[1]].median / timings[names[-1]].median:>17.2f}x"
            )
    short = [f"batch {b} {m}" for ratio, b, m in speedups if ratio < 1.8]
    print(
        f"  {names[-1]} vs {names[0]}: {min(speedups)[0]:.2f}x to {max(speedups)[0]:.2f}x; "
        + ("target >= 1.8x met everywhere" if not short else f"below 1.8x at {', '.join(short)}")
    )


def top1(logits: list[torch.Tensor], labels: torch.Tensor) -> list[float]:
    return [100.0 * float((out.argmax(1) == labels).double().mean()) for out in logits]


def in_batches(model: EarlyExitNetwork, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        parts = [model(chunk) for chunk in images.split(256)]
    return [torch.cat([part[k] for part in parts]) for k in range(len(parts[0]))]


def digits(args: argparse.Namespace, where: Path) -> None:
    if args.tiny:
        print("\n## digits model: skipped (--tiny)")
        return
    run = Path(args.run) if args.run else None
    if run is None:
        tick = time.perf_counter()
        run = train_digits(args.epochs, where)
        print(f"(trained the demo's digits model for {args.epochs} epochs in "
              f"{time.perf_counter() - tick:.0f} s)")  # fmt: skip
    model = load_run(run, where)
    calibration, images, labels = digits_splits(run)
    fp32_ort, int8, exported, quantized = build(model, calibration, where / "digits", args.threads)
    optimized = adanet.optimize_for_inference(model)
    print(f"\n## digits model ({run}): {model.num_exits} exits, input {tuple(images.shape[1:])}")
    print(f"export_onnx {exported:.1f} s, quantize_onnx {quantized:.1f} s "
          f"({CALIBRATION_IMAGES} training images)")  # fmt: skip
    reference = in_batches(model, images)
    ours = in_batches(int8, images)
    fp32_acc, int8_acc = top1(reference, labels), top1(ours, labels)
    worst = max(a - b for a, b in zip(fp32_acc, int8_acc, strict=True))
    print(f"test top-1 ({len(labels)} images), fp32 -> int8 per exit:")
    for k, (a, b) in enumerate(zip(fp32_acc, int8_acc, strict=True)):
        print(f"  exit {k}: {a:6.2f}% -> {b:6.2f}%  ({b - a:+.2f} points)")
    verdict = "met" if worst <= 0.5 else "MISSED"
    print(f"largest loss {worst:.2f} points (target <= 0.5: {verdict})")
    policy = policy_60_at_exit_0(reference)
    shares = adanet.early_exit(int8, images, policy).exit_fractions(model.num_exits)
    print(f"policy: {100 * shares[0]:.0f}% of the test images leave int8 at exit 0")
    # Timed on test images: the policy sends ~60% of them out at exit 0 (random images would
    # mostly go to the last exit).
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(3))
    pool = images[order[: max(BATCHES)]]
    time_models({"fp32 opt": optimized, "ORT fp32": fp32_ort, "ORT int8": int8}, pool, policy, args)


def cifar(args: argparse.Namespace, where: Path) -> None:
    torch.manual_seed(0)
    config = (
        RANetConfig(num_blocks=1, block_step=1, step=1)
        if args.tiny
        else RANetConfig.preset("cifar10")
    )
    model = RANet(config).eval()
    shape = (3, 32, 32)
    calibration = torch.randn(
        (CALIBRATION_IMAGES, *shape), generator=torch.Generator().manual_seed(1)
    )
    fp32_ort, int8, exported, quantized = build(model, calibration, where / "cifar", args.threads)
    optimized = adanet.optimize_for_inference(model)
    print(f"\n## RANet CIFAR-10 configuration, random weights: {model.num_exits} exits")
    print(f"export_onnx {exported:.1f} s, quantize_onnx {quantized:.1f} s "
          f"({CALIBRATION_IMAGES} random images)")  # fmt: skip
    inputs = torch.randn((512, *shape), generator=torch.Generator().manual_seed(2))
    reference, ours = in_batches(model, inputs), in_batches(int8, inputs)
    agreement = [
        100.0 * float((a.argmax(1) == b.argmax(1)).double().mean())
        for a, b in zip(reference, ours, strict=True)
    ]
    print("int8/fp32 top-1 agreement per exit (512 random inputs): "
          + ", ".join(f"{v:.1f}%" for v in agreement))  # fmt: skip
    policy = policy_60_at_exit_0(reference)
    time_models(
        {"fp32 opt": optimized, "ORT fp32": fp32_ort, "ORT int8": int8}, inputs, policy, args
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="an adanet train folder (digits-affine)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per item")
    parser.add_argument("--tiny", action="store_true", help="small models, no training")
    parser.add_argument("--models", default="digits,cifar", help="which of digits,cifar to run")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same options
    if args.repeats < 5 or args.warmup < 0:
        parser.error("--repeats must be >= 5 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    print(f"# int8 early exit: {cpu_description()}, {args.threads} threads")
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as scratch:
        chosen = set(args.models.split(","))
        if "digits" in chosen:
            digits(args, Path(scratch))
        if "cifar" in chosen:
            cifar(args, Path(scratch))


if __name__ == "__main__":
    main()
