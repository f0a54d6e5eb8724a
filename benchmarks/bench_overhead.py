"""Early exit's own overhead at small batches (RANet CIFAR-10 configuration, CPU).

At batch 1, with a policy that sends every sample out at exit 0, ``adanet.early_exit`` runs
``begin``, ``advance(0)`` and head 0, plus its own checks and bookkeeping. This prints the
time of ``early_exit`` against the same stages and head called directly, for the plain and the
``optimize_for_inference`` model, measured side by side on a stream of distinct images (each
image timed once per way, the ways taking turns going first): the issue's target is at most
1.15. With ``--onnx`` the model is also exported (``adanet.export_onnx``, about two minutes on
2 cores) and its ONNX Runtime stages run through ``early_exit`` at batch 1: optimized eager
over ONNX Runtime (target at most 1.5).

It then counts, in a profile of the optimized model's early exit at batch 1 to 16, the
convolutions that run PyTorch's native ``_slow_conv2d_forward`` rather than oneDNN, and times
that choice at batch 1 for the model's own convolutions: PyTorch sends a batch-1
convolution of a small input to the native kernel because oneDNN is slower there.

Run: ``.venv/bin/python benchmarks/bench_overhead.py [--threads 2] [--repeats 5] [--onnx]``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see examples/demo.py

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import Timing, cpu_description, measure_stream
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

import adanet
from adanet import EarlyExitNetwork, EarlyExitPolicy, RANet, RANetConfig


def direct(model: EarlyExitNetwork) -> Callable[[Tensor], Tensor]:
    """Stem, the blocks to exit 0 and head 0, called directly: no check, no bookkeeping."""

    def run(x: Tensor) -> Tensor:
        feature, _ = model.advance(model.begin(x), 0)
        head: nn.Module = model.exits[0]
        out: Tensor = head(feature)
        return out

    return run


def paired(timings: dict[str, Timing], top: str, bottom: str) -> str:
    ratios = [a / b for a, b in zip(timings[top].seconds, timings[bottom].seconds, strict=True)]
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"


def images(seed: int) -> Callable[[int], Tensor]:
    def make(index: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed * 100_000 + index)
        return torch.randn(1, 3, 32, 32, generator=generator)

    return make


def slow_convolutions(model: EarlyExitNetwork, policy: EarlyExitPolicy, costs: list[float]) -> None:
    print("native _slow_conv2d_forward calls in one early exit of the optimized model:")
    for batch in (1, 2, 4, 8, 16):
        x = torch.randn(batch, 3, 32, 32)
        adanet.early_exit(model, x, policy, costs=costs)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            adanet.early_exit(model, x, policy, costs=costs)
        counts = {e.key: e.count for e in prof.key_averages()}
        slow = counts.get("aten::_slow_conv2d_forward", 0)
        onednn = counts.get("aten::mkldnn_convolution", 0)
        print(f"  batch {batch:2d}: {slow} native, {onednn} oneDNN convolutions")


def native_against_onednn(model: EarlyExitNetwork, repeats: int) -> None:
    """Time PyTorch's choice (native) against oneDNN for the batch-1 convolutions of exit 0."""
    seen: list[tuple[nn.Conv2d, Tensor]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a: seen.append((m, a[0])))  # type: ignore[misc]
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    direct(model)(torch.randn(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    native = [(conv, x) for conv, x in seen if conv.groups == 1]

    def run_all(use_onednn: bool) -> None:
        for conv, x in native:
            if use_onednn:
                torch.ops.aten.mkldnn_convolution(
                    x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, 1
                )
            else:
                conv(x)

    timings = measure_stream(
        {"native": lambda _: run_all(False), "oneDNN": lambda _: run_all(True)},
        images(7),
        repeats=repeats,
        batches_per_repeat=50,
    )
    print(
        f"  its {len(native)} batch-1 convolutions of exit 0: oneDNN / native "
        f"{paired(timings, 'oneDNN', 'native')} (above 1: native is faster)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-repeat", type=int, default=200, help="distinct images per repeat")
    parser.add_argument("--onnx", action="store_true", help="also export and time ONNX Runtime")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RANet(RANetConfig.preset("cifar10")).eval()
    optimized = adanet.optimize_for_inference(model)
    costs = [c.macs for c in adanet.measure_exit_costs(model, 32)]
    first = EarlyExitPolicy([-float("inf")] * model.num_exits)  # everybody leaves at exit 0
    ways: dict[str, Callable[[Tensor], object]] = {}
    for name, network in (("plain", model), ("optimized", optimized)):
        ways[f"{name} direct"] = direct(network)
        ways[f"{name} early_exit"] = lambda x, n=network: adanet.early_exit(
            n, x, first, costs=costs
        )
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        if args.onnx:
            from adanet.deploy.onnx import OnnxRuntimeNetwork, export_onnx

            export_onnx(model, Path(folder) / "onnx", 32)
            ort = OnnxRuntimeNetwork(Path(folder) / "onnx", threads=args.threads)
            ways["ONNX Runtime early_exit"] = lambda x: adanet.early_exit(
                ort, x, first, costs=costs
            )
        timings = measure_stream(
            ways, images(1), repeats=args.repeats, batches_per_repeat=args.per_repeat
        )
        print(f"RANet cifar10, batch 1, exit 0, {args.threads} threads; {cpu_description()}")
        print(f"median [min-max] over {args.repeats} repeats of {args.per_repeat} distinct images")
        for name, timing in timings.items():
            print(f"  {name:26s} {timing.median / args.per_repeat * 1e3:.3f} ms / image")
        for name in ("plain", "optimized"):
            ratio = paired(timings, f"{name} early_exit", f"{name} direct")
            print(f"  {name}: early_exit / direct {ratio} (target <= 1.15)")
        if args.onnx:
            print(
                "  optimized early_exit / ONNX Runtime early_exit "
                f"{paired(timings, 'optimized early_exit', 'ONNX Runtime early_exit')}"
                " (target <= 1.5)"
            )
        slow_convolutions(optimized, first, costs)
        native_against_onednn(optimized, args.repeats)


if __name__ == "__main__":
    main()
