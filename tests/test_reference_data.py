"""``tests/conftest.py``: missing reference data skips in a user's clone and fails on CI, and
every reference case in the directory is picked up.

Each test runs pytest in a subprocess on a scratch directory holding a copy of the
conftest and a tiny test file, so the real environment variables decide, as on CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

_TESTS = """
def test_needs_the_directory(reference_dir):
    assert reference_dir.is_dir()

def test_ranet_case(ranet_case):
    print("COLLECTED-CASE", ranet_case.relative_to(ranet_case.parents[1]))
"""


def _run_pytest(
    tmp_path: Path, reference: Path, ci: str | None
) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (project / "test_uses_reference.py").write_text(_TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["ADANET_REFERENCE_DIR"] = str(reference)
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rsE", "-s", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(project), "-c", os.devnull, str(project)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    "ci",
    [None, pytest.param("", marks=pytest.mark.slow), pytest.param("false", marks=pytest.mark.slow)],
)
def test_missing_reference_skips_with_a_message_outside_ci(tmp_path: Path, ci: str | None) -> None:
    done = _run_pytest(tmp_path, tmp_path / "nowhere", ci)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 skipped" in done.stdout, done.stdout
    assert "ADANET_REFERENCE_DIR" in done.stdout and "nowhere" in done.stdout


@pytest.mark.parametrize("ci", ["true", pytest.param("1", marks=pytest.mark.slow)])
def test_missing_reference_fails_on_ci(tmp_path: Path, ci: str) -> None:
    done = _run_pytest(tmp_path, tmp_path / "nowhere", ci)
    assert done.returncode != 0, done.stdout
    assert "skipped" not in done.stdout, done.stdout
    assert done.stdout.count("CI is set") >= 2, done.stdout


def test_every_case_in_the_directory_is_collected_and_an_incomplete_one_fails(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    (reference / "ranet").mkdir(parents=True)
    (reference / "cases").mkdir()
    for stem in ("ranet/cifar10", "cases/ranet_new_config", "cases/ranet_other"):
        for suffix in (".args.txt", ".pth.tar", ".io.pt"):
            (reference / f"{stem}{suffix}").touch()
    (reference / "cases" / "ranet_half.args.txt").touch()  # no checkpoint, no outputs
    (reference / "cases" / "msdnet_x.args.txt").touch()  # another network's case
    done = _run_pytest(tmp_path, reference, None)
    assert done.returncode != 0 and "4 passed, 1 error" in done.stdout, done.stdout + done.stderr
    cases = sorted(
        line.split()[-1]
        for line in done.stdout.splitlines()
        if line.lstrip(".E").startswith("COLLECTED-CASE")
    )
    assert cases == ["cases/ranet_new_config", "cases/ranet_other", "ranet/cifar10"]
    assert "incomplete" in done.stdout and "ranet_half.pth.tar" in done.stdout, done.stdout
