"""Shared fixtures: the reference files made with the original implementations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("ADANET_REFERENCE_DIR", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` beside the repository (CI lays it there)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference files not found at {REFERENCE_DIR} (set ADANET_REFERENCE_DIR)")
    return REFERENCE_DIR


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_worker() -> None:
    # Under pytest-xdist every worker is a process; more torch threads than cores per worker
    # oversubscribes the machine and makes the suite several times slower.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
