"""Shared fixtures: the reference files made with the original implementations.

The reference files live outside the repository (``../shared/reference``, or wherever
``ADANET_REFERENCE_DIR`` points). In a user's clone without them the tests that need them
skip, saying where they looked; on CI (``CI`` set to anything but ``""``, ``0``, ``false``,
``no`` or ``off``) a missing directory is a failure, so a misconfigured runner cannot pass by
skipping the differential tests.

Tests that take a ``ranet_case`` or ``msdnet_case`` argument are parametrised at collection
time over every case of that network in the reference directory: the published ones
(``ranet/cifar10``, ``msdnet/cifar100_anytime``) and every ``cases/ranet_*.args.txt`` /
``cases/msdnet_*.args.txt``, so cases added to the directory are tested without a code change.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("ADANET_REFERENCE_DIR", REPO.parent / "shared" / "reference"))

# Published case of each network, relative to the reference directory (no suffix).
PUBLISHED_CASES = {"ranet": "ranet/cifar10", "msdnet": "msdnet/cifar100_anytime"}
# Suffixes of the three files of a case.
CASE_SUFFIXES = (".args.txt", ".pth.tar", ".io.pt")
# Stands for "no case could be listed" so that the test still runs and skips or fails.
_MISSING = "reference-missing"


def running_on_ci() -> bool:
    """Whether the ``CI`` environment variable asks for strict behaviour."""
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def reference_missing(reason: str) -> NoReturn:
    """Skip the calling test, or fail it on CI, because reference data is missing.

    Args:
        reason: What is missing and where it was looked for.
    """
    if running_on_ci():
        pytest.fail(
            f"{reason}; CI is set, so missing reference data is an error (lay the reference "
            "files at ../shared/reference or set ADANET_REFERENCE_DIR)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (set ADANET_REFERENCE_DIR to the reference files to run this test)")


def reference_case_stems(network: str, root: Path = REFERENCE_DIR) -> list[str]:
    """Every case of ``network`` (``"ranet"`` or ``"msdnet"``) under ``root``, as stems
    relative to ``root`` (e.g. ``"cases/ranet_13"``), published case first."""
    stems = []
    if (root / f"{PUBLISHED_CASES[network]}.args.txt").is_file():
        stems.append(PUBLISHED_CASES[network])
    for path in sorted((root / "cases").glob(f"{network}_*.args.txt")):
        stems.append(f"cases/{path.name.removesuffix('.args.txt')}")
    return stems


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for network in PUBLISHED_CASES:
        argument = f"{network}_case"
        if argument in metafunc.fixturenames:
            stems = reference_case_stems(network) if REFERENCE_DIR.is_dir() else []
            metafunc.parametrize(argument, stems or [_MISSING], indirect=True)


def _case(request: pytest.FixtureRequest, network: str) -> Path:
    stem: str = request.param
    if not REFERENCE_DIR.is_dir():
        reference_missing(f"reference files not found at {REFERENCE_DIR}")
    if stem == _MISSING:
        reference_missing(f"no {network} cases in {REFERENCE_DIR}")
    path = REFERENCE_DIR / stem
    absent = [path.name + s for s in CASE_SUFFIXES if not Path(f"{path}{s}").is_file()]
    if absent:
        pytest.fail(f"reference case {stem} is incomplete: missing {absent} in {path.parent}")
    return path


@pytest.fixture
def ranet_case(request: pytest.FixtureRequest) -> Path:
    """One RANet reference case: the path prefix of its ``.args.txt``, ``.pth.tar`` and
    ``.io.pt`` files."""
    return _case(request, "ranet")


@pytest.fixture
def msdnet_case(request: pytest.FixtureRequest) -> Path:
    """One MSDNet reference case: the path prefix of its three files."""
    return _case(request, "msdnet")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` beside the repository (CI lays it there)."""
    if not REFERENCE_DIR.is_dir():
        reference_missing(f"reference files not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def budgeted_case(reference_dir: Path) -> dict[str, Any]:
    """The original code's budgeted-batch sweep on the visible case: its inputs and the 39
    results the budgeted and reference-arithmetic tests compare with."""
    data: dict[str, Any] = torch.load(
        reference_dir / "cases" / "budgeted" / "visible.pt", weights_only=True
    )
    assert len(data["results"]) == 39
    return data


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_worker() -> None:
    # Under pytest-xdist every worker is a process; more torch threads than cores per worker
    # oversubscribes the machine and makes the suite several times slower.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One intra-op thread for the test (small nets run faster so, and far faster on a busy
    CPU); the previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_example(stem: str) -> ModuleType:
    """The script ``examples/<stem>.py`` imported as a module (once per test process)."""
    name = f"adanet_example_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
