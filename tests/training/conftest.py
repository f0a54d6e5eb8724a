"""Fixtures of the adanet.training tests."""

from __future__ import annotations

import pytest

from adanet.data import DataSplits, digits_datasets


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here on one thread: small convolutions only contend for the cores."""


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    """The digits splits with a validation set (seed 0), built once per test module."""
    return digits_datasets(seed=0, use_valid=True)
