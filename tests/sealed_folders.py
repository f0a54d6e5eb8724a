"""Test helpers for checksummed folders (model directories and ONNX exports)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def reseal(directory: Path) -> None:
    """Record every listed file's current SHA-256 in ``checksums.json``, as someone able to
    rewrite the checksums would, so that a test reaches the checks behind them."""
    path = directory / "checksums.json"
    record = json.loads(path.read_text())
    record["files"] = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in record["files"]
    }
    path.write_text(json.dumps(record))
