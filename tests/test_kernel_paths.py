"""The second pass of ``make test`` really runs other kernels than the first."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.numerics


@pytest.mark.skipif(not os.environ.get("ADANET_OTHER_KERNELS"), reason="first pass only")
def test_the_second_pass_uses_scalar_aten_kernels() -> None:
    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
