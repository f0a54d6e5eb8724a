"""Kill a writer of a model directory or ONNX export at random points, then read the folder.

Run as a script by the tests (``python kill_writers.py KIND DIRECTORY SWAP TRIALS SEED``): it
builds two small RANets A and B, writes A once, then for each trial forks a child that
replaces the folder with B, A, B, ... in a loop, SIGKILLs it after a random delay, and reads
the folder back in this process. One JSON line per trial says which model the folder held
(``"A"``, ``"B"``) or what went wrong. The process is started with one thread, so forking
after torch is imported is safe.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

from adanet import RANet, RANetConfig, _atomic, load_pretrained, save_pretrained

PREP = {"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": [3, 32, 32]}


def build(seed: int) -> RANet:
    torch.manual_seed(seed)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
    return model.eval()


def write(kind: str, model: RANet, directory: Path) -> None:
    if kind == "model_dir":
        save_pretrained(model, directory, preprocessing=PREP)
    else:
        from adanet.deploy.onnx import export_onnx

        export_onnx(model, directory, 32, preprocessing=PREP)


def read(kind: str, directory: Path, models: dict[str, RANet], x: torch.Tensor) -> str:
    with torch.no_grad():
        if kind == "model_dir":
            loaded = load_pretrained(directory)
            state = loaded.state_dict()
            for name, model in models.items():
                if all(torch.equal(state[k], v) for k, v in model.state_dict().items()):
                    return name
            return "neither"
        from adanet.deploy.onnx import OnnxRuntimeNetwork

        logits = OnnxRuntimeNetwork(directory, threads=1)(x)
        for name, model in models.items():
            expected = model(x)
            if all(torch.allclose(a, b, atol=1e-4) for a, b in zip(logits, expected, strict=True)):
                return name
        return "neither"


def main() -> None:
    kind, directory, swap, trials, seed = sys.argv[1:6]
    torch.set_num_threads(1)
    _atomic._USE_EXCHANGE = swap == "exchange"
    target = Path(directory)
    models = {"A": build(1), "B": build(2)}
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    write(kind, models["A"], target)
    started = time.perf_counter()
    write(kind, models["B"], target)
    one_write = time.perf_counter() - started
    rng = random.Random(int(seed))
    for trial in range(int(trials)):
        child = os.fork()
        if child == 0:  # the writer: replace the folder over and over until killed
            try:
                for i in range(10**6):
                    write(kind, models["AB"[i % 2]], target)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 2.5 * one_write))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        try:
            outcome = read(kind, target, models, x)
        except Exception as error:  # reported, and failed by the test
            outcome = f"{type(error).__name__}: {error}"
        print(json.dumps({"trial": trial, "held": outcome}), flush=True)
    write(kind, models["A"], target)  # a clean write removes what the killed ones left
    print(json.dumps({"left": sorted(p.name for p in target.parent.iterdir())}), flush=True)


if __name__ == "__main__":
    main()
