"""Speed and memory of adanet's RANet, side by side in one run (issue: speed near the limit).

Prints, for the RANet CIFAR-10 configuration (batch 64, ``--threads`` threads):

1. the machine's dense-convolution peak: a 3×3 conv, 128 channels in and out, batch 64,
   32×32, timed in this run;
2. eval throughput of the plain model, ``optimize_for_inference`` and ``torch.compile``
   (with its compile time), each as a share of that peak (the model's reference-convention
   MACs × 2 FLOPs per second over the conv's FLOPs per second), and the optimized/plain ratio;
3. training step time (forward + backward, SGD step) and the extra peak memory of a step,
   default against ``memory_efficient=True``. Memory: each variant in a fresh subprocess,
   from its peak resident set (``VmHWM``) over the warm process's, with
   ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed large blocks go back to the OS and the peak
   reflects live tensors rather than allocator caching. Time: both variants in one more
   subprocess with the default allocator (the mmap threshold would charge page faults to
   every large allocation, which is not what training pays), interleaved step by step; that
   process also prints the largest difference of the two variants' gradients (parameters
   and input) and BatchNorm statistics after one step from the same weights and batch;
4. on CUDA when present, the same eval numbers in fp32 and bf16, batch 64 and 256.

Early-exit time vs MACs: ``bench_early_exit.py``; budgeted sweep: ``bench_budgeted_sweep.py``.

Run: ``.venv/bin/python benchmarks/bench_speed.py [--threads 2] [--skip-compile]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import cast

import torch
from _timing import Timing, cpu_description, measure
from torch import nn

import adanet
from adanet import MSDNet, MSDNetConfig, RANet, RANetConfig

CONFIG = RANetConfig.preset("cifar10")


def conv_peak(device: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> Timing:
    """Times the reference convolution warm: oneDNN's first calls are up to ~1.7x slower, and
    a cold peak would make every share of it look larger than it is."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).to(device, dtype).eval()
    x = torch.randn(64, 128, 32, 32, device=device, dtype=dtype)
    with torch.inference_mode():
        return measure(
            lambda: conv(x), args.repeats, min_warmup_seconds=args.warmup, sync=_sync(device)
        )


CONV_FLOPS = 2 * 128 * 128 * 9 * 32 * 32 * 64


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _training_setup(
    memory_efficient: bool,
) -> tuple[RANet, Callable[[], None], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = RANet(dataclasses.replace(CONFIG, memory_efficient=memory_efficient)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = adanet.training.MultiExitLoss()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return model, step, x, y


def training_memory_child(memory_efficient: bool, threads: int) -> None:
    """Run in a fresh subprocess started with ``MALLOC_MMAP_THRESHOLD_=65536`` (every large
    block is mmapped, so a free returns it to the OS): the extra peak resident memory of a
    training step over the warm process, in bytes."""
    torch.set_num_threads(threads)
    _, step, _, _ = _training_setup(bool(memory_efficient))
    # The first steps allocate gradients and momentum buffers (the same in both variants) and
    # warm oneDNN up; the measured step's extra memory is activations and recomputation.
    step()
    step()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current resident set
    base = _status_bytes("VmRSS")
    step()
    print(json.dumps({"extra_bytes": _status_bytes("VmHWM") - base}))


def training_time_child(threads: int, repeats: int) -> None:
    """Run in a fresh subprocess with the default allocator: both variants' step times,
    interleaved step by step so that machine load affects both alike, and the largest
    difference of their gradients (every parameter and the input) and BatchNorm statistics
    after one step from the same weights and batch."""
    torch.set_num_threads(threads)
    default, default_step, x, y = _training_setup(False)
    efficient, efficient_step, _, _ = _training_setup(True)
    efficient.load_state_dict(default.state_dict())
    inputs = []
    for model in (default, efficient):
        xi = x.clone().requires_grad_()
        adanet.training.MultiExitLoss()(model(xi), y).backward()
        inputs.append(xi.grad)
    pairs = [
        *(
            (a.grad, b.grad)
            for a, b in zip(default.parameters(), efficient.parameters(), strict=True)
        ),
        *zip(default.buffers(), efficient.buffers(), strict=True),
        (inputs[0], inputs[1]),
    ]
    differences = [
        float((a.double() - b.double()).abs().max())
        for a, b in pairs
        if a is not None and b is not None
    ]
    for step in (default_step, efficient_step) * 3:  # warm-up
        step()
    seconds: dict[str, list[float]] = {"default": [], "efficient": []}
    for _ in range(repeats):
        for name, step in (("default", default_step), ("efficient", efficient_step)):
            tick = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - tick)
    print(json.dumps({**seconds, "max_difference": max(differences)}))


def _child(function: str, *args: str, mmap_threshold: bool) -> dict[str, object]:
    env = dict(os.environ)
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bench_speed; "
        f"bench_speed.{function}(*[int(a) for a in sys.argv[2:]])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, here, *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def training_step(threads: int, repeats: int) -> dict[str, float | Timing]:
    """The training comparison: each variant's extra peak memory from its own fresh process,
    and both step times and the gradient difference from a third."""
    memory = {
        name: float(
            cast(
                int,
                _child("training_memory_child", flag, str(threads), mmap_threshold=True)[
                    "extra_bytes"
                ],
            )
        )
        for name, flag in (("default", "0"), ("efficient", "1"))
    }
    timed = _child("training_time_child", str(threads), str(repeats), mmap_threshold=False)
    return {
        "default_bytes": memory["default"],
        "efficient_bytes": memory["efficient"],
        "default": Timing(tuple(cast(list[float], timed["default"]))),
        "efficient": Timing(tuple(cast(list[float], timed["efficient"]))),
        "max_difference": float(cast(float, timed["max_difference"])),
    }


def eval_table(
    device: torch.device, dtype: torch.dtype, batch: int, args: argparse.Namespace
) -> None:
    """Prints plain / optimized / compiled throughput as shares of the warm conv peak.

    The peak is measured before and after the models (both warm) and the higher of the two is
    used, so a peak depressed by anything else running makes the shares smaller, not larger.
    """
    sync = _sync(device)
    peak_before = conv_peak(device, dtype, args)
    model = RANet(CONFIG).to(device).eval()
    flops = 2 * adanet.measure_exit_costs(model, 32, convention="reference")[-1].macs * batch
    x = torch.randn(batch, 3, 32, 32, device=device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    rows: list[tuple[str, Timing, str]] = []

    def timed(fn: Callable[[], object]) -> Timing:
        return measure(fn, args.repeats, min_warmup_seconds=args.warmup, sync=sync)

    with torch.inference_mode(), autocast:
        plain = timed(lambda: model(x))
        rows.append(("plain", plain, ""))
        concatenating = adanet.optimize_for_inference(model, dense_buffers=False)
        optimized = adanet.optimize_for_inference(model)
        xo = x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x
        # Interleaved, so that both see the same machine state.
        cat_timing = timed(lambda: concatenating(xo))
        fast = timed(lambda: optimized(xo))
        cat_timing = Timing(cat_timing.seconds + timed(lambda: concatenating(xo)).seconds)
        rows.append(
            ("optimized, torch.cat", cat_timing, f"{plain.median / cat_timing.median:.2f}x plain")
        )
        difference = max(
            float((a.float() - b.float()).abs().max() / b.float().abs().max())
            for a, b in zip(optimized(xo), model(x), strict=True)
        )
        rows.append(
            (
                "optimize_for_inference",
                fast,
                f"{plain.median / fast.median:.2f}x plain, "
                f"{cat_timing.median / fast.median:.2f}x torch.cat; "
                f"max |diff| / max |plain| {difference:.1e}",
            )
        )
    if not args.skip_compile:
        compiled = torch.compile(optimized)
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            compiled(xo)
            sync()
            compile_seconds = time.perf_counter() - start
            seconds = timed(lambda: compiled(xo))
        note = f"compile {compile_seconds:.0f} s, {plain.median / seconds.median:.2f}x plain"
        rows.append(("torch.compile(optimized)", seconds, note))
    peak_after = conv_peak(device, dtype, args)
    peak = CONV_FLOPS / min(peak_before.median, peak_after.median)
    name = str(dtype).replace("torch.", "")
    print(
        f"\n{device.type} {name} batch {batch}: warm conv peak {peak / 1e9:.1f} GFLOP/s "
        f"(before {CONV_FLOPS / peak_before.median / 1e9:.1f}, "
        f"after {CONV_FLOPS / peak_after.median / 1e9:.1f}; median of {args.repeats})"
    )
    print(f"  {'variant':26s} {'median [min-max] per batch':>30s} {'img/s':>7s} {'% of peak':>10s}")
    for label, timing, note in rows:
        share = 100 * flops / timing.median / peak
        spread = f"{100 * flops / timing.worst / peak:.1f}-{100 * flops / timing.best / peak:.1f}"
        print(
            f"  {label:26s} {timing.ms():>30s} {batch / timing.median:7.0f} "
            f"{share:9.1f}% [{spread}]  {note}"
        )


def paired_dense_buffers(pairs: int) -> None:
    """Concatenating against buffered dense blocks, alternating call by call so that both see
    the same machine state, for RANet and MSDNet (CIFAR-10 configurations, batch 64)."""
    print(f"\ncpu float32 batch 64: dense buffers against torch.cat, {pairs} alternating pairs")
    networks: list[tuple[str, nn.Module]] = [
        ("RANet cifar10", RANet(CONFIG)),
        ("MSDNet cifar10_anytime", MSDNet(MSDNetConfig.preset("cifar10_anytime"))),
    ]
    x = torch.randn(64, 3, 32, 32)
    for name, network in networks:
        model = cast(adanet.EarlyExitNetwork, network.eval())
        variants = (
            adanet.optimize_for_inference(model, dense_buffers=False),
            adanet.optimize_for_inference(model, dense_buffers=True),
        )
        seconds: tuple[list[float], list[float]] = ([], [])
        with torch.inference_mode():
            for repeat in range(pairs + 4):  # the first 4 pairs warm up
                for variant, record in zip(variants, seconds, strict=True):
                    tick = time.perf_counter()
                    variant(x)
                    if repeat >= 4:
                        record.append(time.perf_counter() - tick)
        ratios = Timing(tuple(a / b for a, b in zip(*seconds, strict=True)))
        print(
            f"  {name:24s} torch.cat {Timing(tuple(seconds[0])).ms()}  buffers "
            f"{Timing(tuple(seconds[1])).ms()}  paired speed-up {ratios.median:.2f}x "
            f"[{ratios.best:.2f}-{max(ratios.seconds):.2f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (>= 5)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per item")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"RANet cifar10 configuration; {args.threads} CPU threads; {cpu_description()}")

    eval_table(torch.device("cpu"), torch.float32, 64, args)
    paired_dense_buffers(max(15, args.repeats))

    result = training_step(args.threads, args.repeats)
    default, efficient = cast(Timing, result["default"]), cast(Timing, result["efficient"])
    default_bytes = cast(float, result["default_bytes"])
    efficient_bytes = cast(float, result["efficient_bytes"])
    print(f"\ncpu training step, batch 64 (forward + backward + SGD step), {args.repeats} steps")
    rows = (
        ("default", default, default_bytes),
        ("memory_efficient=True", efficient, efficient_bytes),
    )
    for label, timing, extra in rows:
        print(f"  {label:22s} {timing.ms()}  extra peak memory {extra / 2**20:7.0f} MB")
    print(
        f"  memory ratio {efficient_bytes / default_bytes:.2f}, "
        f"time ratio {efficient.median / default.median:.2f} (medians), "
        f"largest gradient / statistics difference {result['max_difference']:.1e}"
    )

    if torch.cuda.is_available():
        device = torch.device("cuda")
        for dtype in (torch.float32, torch.bfloat16):
            for batch in (64, 256):
                eval_table(device, dtype, batch, args)


if __name__ == "__main__":
    main()
