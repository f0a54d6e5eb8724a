"""``module_device``: where a module's parameters live (adanet._device)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adanet._device import module_device


def test_a_module_is_where_its_parameters_are() -> None:
    assert module_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


def test_a_module_without_parameters_is_on_the_cpu() -> None:
    assert module_device(nn.ReLU()) == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_module_moved_to_the_gpu_reports_it() -> None:
    assert module_device(nn.Linear(2, 2).cuda()).type == "cuda"
