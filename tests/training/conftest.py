"""Fixtures of the adanet.training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from adanet.data import DataSplits, digits_datasets


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Small convolutions gain nothing from a second thread, and under pytest-xdist on a busy
    # two-core machine spinning OpenMP threads slow them down many times over.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    """The digits splits with a validation set (seed 0), built once per test module."""
    return digits_datasets(seed=0, use_valid=True)
