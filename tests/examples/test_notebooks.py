"""Every notebook in ``examples/`` runs top to bottom, and is stored without outputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import REFERENCE_DIR, reference_missing

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
TIMEOUT_S = 300
# Notebooks that read the original implementations' reference files.
NEEDS_REFERENCE = {"03_original_checkpoint.ipynb"}


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, f"expected at least three notebooks in {EXAMPLES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {index} has stored outputs"
        assert cell.get("execution_count") is None, (
            f"{path.name} cell {index} has an execution count"
        )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    if path.name in NEEDS_REFERENCE and not REFERENCE_DIR.is_dir():
        reference_missing(f"reference files not found at {REFERENCE_DIR}")
    notebook = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + TIMEOUT_S

    def remaining(cell: object) -> int:
        # nbclient times each cell; giving each the time left makes it a per-notebook limit.
        return max(1, int(deadline - time.monotonic()))

    client = nbclient.NotebookClient(
        notebook,
        timeout_func=remaining,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    # One intra-op thread per kernel unless told otherwise: the suite runs in parallel
    # workers, and oversubscribed OpenMP threads spin and stall each other.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if "ADANET_REFERENCE_DIR" in env:  # the kernel runs in examples/: make it absolute
        env["ADANET_REFERENCE_DIR"] = str(REFERENCE_DIR.resolve())
    # Raises CellExecutionError (with the failing cell and its traceback) on any error, and
    # CellTimeoutError once the notebook has run for TIMEOUT_S seconds.
    client.execute(cwd=str(EXAMPLES), env=env)
