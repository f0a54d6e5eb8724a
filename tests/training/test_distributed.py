"""A two-process gloo run of ``torchrun -m adanet train``, then a resumed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from adanet.training import LAST_CHECKPOINT

TINY = [
    "--arch", "RANet", "--nBlocks", "1", "--nChannels", "4", "--growthRate", "4",
    "--grFactor", "2-1", "--bnFactor", "2-1", "--block-step", "1", "--scale-list", "1-2",
    "--step", "1",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
]


def _torchrun(save: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "adanet", "train", *TINY, "--data", "digits", "--batch-size", "32", "-j", "0",
        "--print-freq", "0", "--no-progress", "--save", str(save), *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_two_process_gloo_training_and_resume(tmp_path: Path) -> None:
    save = tmp_path / "ddp"
    first = _torchrun(save, "--epochs", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "x 2 processes (gloo)" in first.stdout
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == 2
    assert len(metrics["anytime"]) == 2 and len(metrics["budgeted"]) == 39
    assert (save / LAST_CHECKPOINT).is_file()
    # Rank 0 alone prints (one training line per epoch).
    assert first.stdout.count("epoch   0") == 1

    second = _torchrun(save, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed from" in second.stdout and "continuing at epoch 1 of 2" in second.stdout
    assert "epoch   1" in second.stdout and "epoch   0 " not in second.stdout
    history = json.loads((save / "metrics.json").read_text())["train"]["history"]
    assert [r["epoch"] for r in history] == [0, 1]
