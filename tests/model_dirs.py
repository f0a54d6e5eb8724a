"""Small networks and file edits shared by the model-directory and Hub tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adanet import MSDNet, RANet, RANetConfig
from adanet.models import PretrainedCfg
from small_configs import SMALL_MSDNET

PREP = PretrainedCfg(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), input_size=(3, 32, 32))


def small_ranet() -> RANet:
    """A three-exit RANet whose batch-norm statistics are not the defaults, so a round trip
    that lost the running buffers would change its logits."""
    torch.manual_seed(3)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def small_msdnet() -> MSDNet:
    """A two-block MSDNet for 5 classes."""
    torch.manual_seed(4)
    return MSDNet(SMALL_MSDNET.replace(num_blocks=2)).eval()


def rewrite_json(path: Path, change: Any) -> None:
    """Load ``path``, let ``change`` edit the document in place, and write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
