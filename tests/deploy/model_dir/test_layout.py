"""Checksummed model directories (``adanet.deploy.model_dir.layout``): tampering, missing
files, and which folders may be replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from adanet.deploy.model_dir import PretrainedError, load_pretrained, save_pretrained
from model_dirs import PREP, small_ranet


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP)
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"model\.safetensors was altered"):
        load_pretrained(tmp_path)


def test_altered_config_and_missing_files_are_refused(tmp_path: Path) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP)
    config = tmp_path / "config.json"
    original = config.read_text()
    config.write_text(original.replace('"max_prob"', '"entropy"').replace("null", "null "))
    with pytest.raises(PretrainedError, match=r"config\.json was altered"):
        load_pretrained(tmp_path)
    config.write_text(original)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match=r"model\.safetensors is missing"):
        load_pretrained(tmp_path)
    (tmp_path / "checksums.json").unlink()
    with pytest.raises(PretrainedError, match=r"checksums\.json is missing"):
        load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "nowhere")
