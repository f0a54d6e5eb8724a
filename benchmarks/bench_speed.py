"""Speed and memory of adanet's RANet, side by side in one run (issue: speed near the limit).

Prints, for the RANet CIFAR-10 configuration (batch 64, ``--threads`` threads):

1. the machine's dense-convolution peak: a 3×3 conv, 128 channels in and out, batch 64,
   32×32, timed in this run;
2. eval throughput of the plain model, ``optimize_for_inference`` and ``torch.compile``
   (with its compile time), each as a share of that peak (the model's reference-convention
   MACs × 2 FLOPs per second over the conv's FLOPs per second), and the optimized/plain ratio;
3. training step time (forward + backward, SGD step) and the extra peak memory of a step,
   default against ``memory_efficient=True`` — each measured in a fresh subprocess from its
   peak resident set (``VmHWM``) with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed large
   blocks go back to the OS and the peak reflects live tensors rather than allocator caching;
4. on CUDA when present, the same eval numbers in fp32 and bf16, batch 64 and 256.

Early-exit time vs MACs: ``bench_early_exit.py``; budgeted sweep: ``bench_budgeted_sweep.py``.

Run: ``.venv/bin/python benchmarks/bench_speed.py [--threads 2] [--skip-compile]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

import adanet
from adanet import RANet, RANetConfig

CONFIG = RANetConfig.preset("cifar10")


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_peak(
    device: torch.device, dtype: torch.dtype, repeats: int, sync: Callable[[], None]
) -> float:
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).to(device, dtype).eval()
    x = torch.randn(64, 128, 32, 32, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = median_time(lambda: conv(x), repeats, sync)
    return 2 * 128 * 128 * 9 * 32 * 32 * 64 / seconds


def training_step_child(memory_efficient: bool, threads: int) -> None:
    """Run in a subprocess: one training step's time and extra peak memory (MB)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = RANet(dataclasses.replace(CONFIG, memory_efficient=memory_efficient)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = adanet.MultiExitLoss()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    def status(field: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    # The first step allocates gradients and momentum buffers (the same in both variants);
    # the measured step's extra memory is activations and recomputation.
    step()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current resident set
    base = status("VmRSS")
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "extra_bytes": status("VmHWM") - base}))


def training_step(memory_efficient: bool, threads: int) -> dict[str, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bench_speed; "
        "bench_speed.training_step_child(sys.argv[2] == '1', int(sys.argv[3]))"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code, here, "1" if memory_efficient else "0", str(threads)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def eval_table(
    device: torch.device, dtype: torch.dtype, batch: int, args: argparse.Namespace
) -> None:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    peak = conv_peak(device, dtype, args.repeats, sync)
    model = RANet(CONFIG).to(device).eval()
    flops = 2 * adanet.measure_exit_costs(model, 32, convention="reference")[-1].macs * batch
    x = torch.randn(batch, 3, 32, 32, device=device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    rows: list[tuple[str, float, str]] = []
    with torch.inference_mode(), autocast:
        plain = median_time(lambda: model(x), args.repeats, sync)
        rows.append(("plain", plain, ""))
        optimized = adanet.optimize_for_inference(model)
        xo = x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x
        fast = median_time(lambda: optimized(xo), args.repeats, sync)
        rows.append(("optimize_for_inference", fast, f"{plain / fast:.2f}x plain"))
    if not args.skip_compile:
        compiled = torch.compile(optimized)
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            compiled(xo)
            sync()
            compile_seconds = time.perf_counter() - start
            seconds = median_time(lambda: compiled(xo), args.repeats, sync)
        rows.append(
            (
                "torch.compile(optimized)",
                seconds,
                f"compile {compile_seconds:.0f} s, {plain / seconds:.2f}x plain",
            )
        )
    name = str(dtype).replace("torch.", "")
    print(f"\n{device.type} {name} batch {batch}: conv peak {peak / 1e9:.1f} GFLOP/s")
    print(f"  {'variant':26s} {'ms/batch':>9s} {'img/s':>8s} {'% of conv peak':>15s}")
    for label, seconds, note in rows:
        print(
            f"  {label:26s} {seconds * 1e3:9.1f} {batch / seconds:8.0f} "
            f"{100 * flops / seconds / peak:14.1f}%  {note}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"RANet cifar10 configuration; torch {torch.__version__}; {args.threads} CPU threads")

    eval_table(torch.device("cpu"), torch.float32, 64, args)

    default = training_step(False, args.threads)
    efficient = training_step(True, args.threads)
    print("\ncpu training step, batch 64 (forward + backward + SGD step)")
    for label, result in (("default", default), ("memory_efficient=True", efficient)):
        print(
            f"  {label:22s} {result['seconds'] * 1e3:8.0f} ms  "
            f"extra peak memory {result['extra_bytes'] / 2**20:7.0f} MB"
        )
    print(
        f"  memory ratio {efficient['extra_bytes'] / default['extra_bytes']:.2f} (target <= 0.6), "
        f"time ratio {efficient['seconds'] / default['seconds']:.2f}"
    )

    if torch.cuda.is_available():
        device = torch.device("cuda")
        for dtype in (torch.float32, torch.bfloat16):
            for batch in (64, 256):
                eval_table(device, dtype, batch, args)


if __name__ == "__main__":
    main()
