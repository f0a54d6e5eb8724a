"""The wheel builds, ships every module, ``py.typed`` and the licence, and installs into a
working package; the sdist ships the licence and only this project's own, small files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "adanet"

# Names the public API must offer: at the root (a subset of adanet.__all__) or, dotted, in a
# subpackage reached as an attribute of the root.
REQUIRED_NAMES = {
    "RANet",
    "RANetConfig",
    "MSDNet",
    "MSDNetConfig",
    "blocks.DenseLayer",
    "blocks.FusionBlock",
    "blocks.ScaleBranch",
    "blocks.ExitHead",
    "EarlyExitPolicy",
    "early_exit",
    "budgeted_sweep",
    "measure_exit_costs",
    "compat.load_reference_checkpoint",
}
#: At most this many names at the root: what a user types in the first hour.
MAX_ROOT_NAMES = 25

# Run in the installed copy only: the source tree must not be on the path.
_PROBE = """
import importlib, importlib.metadata, json, sys
import adanet
missing = [name for name in adanet.__all__ if not hasattr(adanet, name)]
def resolves(dotted):
    value = adanet
    for part in dotted.split("."):
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True
required = json.loads(sys.argv[1])
print(json.dumps({
    "unresolved": [name for name in required if not resolves(name)],
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
        [sys.executable, "-c", _PROBE, json.dumps(sorted(REQUIRED_NAMES))],
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
    absent = sorted(n for n in REQUIRED_NAMES if "." not in n and n not in report["all"])
    assert not absent, f"missing from adanet.__all__: {absent}"
    assert report["unresolved"] == [], f"required names that do not resolve: {report}"
    assert len(report["all"]) <= MAX_ROOT_NAMES, report["all"]
    assert report["version"] == report["metadata_version"]
    assert report["version"] != "0.0.0+unknown"


# Identifiers of the original RANet / MSDNet code that adanet has no reason to contain (it
# maps the originals' parameter names only in its checkpoint translation, and those are not
# listed here). Split in two so that this file does not itself contain them.
_ORIGINAL_IDENTIFIERS = [
    a + b
    for a, b in (
        ("inter", "Channels1"),
        ("_trans", "_flag"),
        ("low", "_ftrs"),
        ("n_block", "_curr"),
        ("cls", "_ops"),
        ("ori", "_idx"),
    )
]
_MAX_FILE_BYTES = 1_000_000


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    # hatchling is a dev dependency; its PEP 517 hook builds without an index.
    build = f"from hatchling.build import build_sdist; print(build_sdist({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", build], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert done.returncode == 0, f"building the sdist failed:\n{done.stdout}\n{done.stderr}"
    archives = list(out.glob("adanet_torch-*.tar.gz"))
    assert len(archives) == 1, f"expected one adanet_torch sdist, found {os.listdir(out)}"
    return archives[0]


def test_wheel_ships_the_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licences = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1, f"no LICENSE in the wheel: {names}"
        text = archive.read(licences[0]).decode()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    assert text == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in text
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata


def test_sdist_ships_the_licence_and_only_our_own_small_files(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        root = members[0].name.split("/")[0]
        names = {m.name.removeprefix(f"{root}/") for m in members}
        assert "LICENSE" in names, sorted(names)
        licence = archive.extractfile(f"{root}/LICENSE")
        assert licence is not None and b"MIT License" in licence.read()
        assert {"pyproject.toml", "README.md", "src/adanet/__init__.py"} <= names
        large = sorted(f"{m.name} ({m.size} bytes)" for m in members if m.size > _MAX_FILE_BYTES)
        assert not large, f"files over 1 MB in the sdist: {large}"
        copied = [name for name in names if name.startswith("tests/reference_impl/")]
        assert not copied, f"third-party code in the sdist: {copied}"
        found: dict[str, list[str]] = {}
        for member in members:
            handle = archive.extractfile(member)
            assert handle is not None
            text = handle.read().decode("utf-8", errors="replace")
            hits = [word for word in _ORIGINAL_IDENTIFIERS if word in text]
            if hits:
                found[member.name.removeprefix(f"{root}/")] = hits
    assert not found, f"files with identifiers of the original RANet/MSDNet code: {found}"
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pt", ".pth.tar"))]
