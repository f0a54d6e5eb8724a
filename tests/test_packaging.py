"""The wheel builds, ships every module and ``py.typed``, and installs into a working package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "adanet"

# Names the public API must offer (a subset of adanet.__all__; every name in it must resolve).
REQUIRED_NAMES = {
    "RANet",
    "RANetConfig",
    "MSDNet",
    "MSDNetConfig",
    "DenseLayer",
    "FusionBlock",
    "ScaleBranch",
    "ExitHead",
    "EarlyExitPolicy",
    "early_exit",
    "budgeted_sweep",
    "measure_exit_costs",
    "load_reference_checkpoint",
}

# Run in the installed copy only: the source tree must not be on the path.
_PROBE = """
import importlib, importlib.metadata, json, sys
import adanet
missing = [name for name in adanet.__all__ if not hasattr(adanet, name)]
print(json.dumps({
    "file": adanet.__file__,
    "all": list(adanet.__all__),
    "missing": missing,
    "version": adanet.__version__,
    "metadata_version": importlib.metadata.version("adanet-torch"),
    "cli": importlib.import_module("adanet.cli").__name__,
}))
"""


def _has_hatchling() -> bool:
    try:
        import hatchling  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(out)]
    # Without build isolation pip needs no index: the backend comes from this environment.
    if _has_hatchling():
        command.insert(4, "--no-build-isolation")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    wheels = list(out.glob("adanet_torch-*.whl"))
    assert len(wheels) == 1, f"expected one adanet_torch wheel, found {os.listdir(out)}"
    return wheels[0]


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--no-compile",
        "--target",
        str(target),
        str(wheel),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install --target failed:\n{done.stdout}\n{done.stderr}"
    return target


def test_wheel_contains_every_module_and_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "adanet/py.typed" in names
    expected = {"adanet/" + path.relative_to(SOURCE).as_posix() for path in SOURCE.rglob("*.py")}
    assert expected, "no modules found in the source tree"
    missing = sorted(expected - names)
    assert not missing, f"modules missing from the wheel: {missing}"
    assert not [n for n in names if n.startswith(("tests/", "src/"))], "stray files in the wheel"


def test_wheel_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
        entry_points_name = metadata_name.replace("METADATA", "entry_points.txt")
        entry_points = archive.read(entry_points_name).decode()
    assert "Name: adanet-torch" in metadata
    assert "adanet = adanet.cli:main" in entry_points


def test_installed_wheel_exposes_the_public_api(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    # Not -I: that would also drop the venv's site-packages, where torch is.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=site,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, f"importing the installed wheel failed:\n{done.stderr}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(site.resolve()), (
        f"imported adanet from {report['file']}, not from the installed wheel in {site}"
    )
    assert report["missing"] == [], f"names in adanet.__all__ that do not resolve: {report}"
    absent = sorted(REQUIRED_NAMES - set(report["all"]))
    assert not absent, f"missing from adanet.__all__: {absent}"
    assert report["version"] == report["metadata_version"]
    assert report["version"] != "0.0.0+unknown"
