"""The files of a model directory, their checksums, and the errors about them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adanet._atomic import TEMPORARY_NAME
from adanet._safe_load import check_plain_name, read_confined
from adanet.deploy.metadata import MAX_JSON_BYTES, check_version, parse_json, require_keys
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = [
    "CHECKSUM_FILE",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MAX_WEIGHT_BYTES",
    "MODEL_FILES",
    "SAFETENSORS_FILE",
    "TORCH_FILE",
    "PretrainedError",
    "PretrainedInfo",
    "check_replaceable",
    "checksum_document",
    "read_checksums",
    "read_verified",
    "sha256_hex",
]

FORMAT_VERSION = 1
"""Version of the directory layout written by :func:`save_pretrained`."""

CONFIG_FILE = "config.json"
CHECKSUM_FILE = "checksums.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "model.pt"
#: Everything :func:`save_pretrained` writes; replacing a directory deletes nothing else.
MODEL_FILES = (CONFIG_FILE, CHECKSUM_FILE, SAFETENSORS_FILE, TORCH_FILE)
#: The largest weights file read: 16 GiB.
MAX_WEIGHT_BYTES = 16 * 2**30

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PretrainedError(ValueError):
    """A model directory that is incomplete, altered, too new or not adanet's."""


@dataclass(frozen=True)
class PretrainedInfo:
    """What a model directory holds besides the network (``model.pretrained``).

    Attributes:
        arch: Architecture name (``"RANet"``, ``"MSDNet"``) or registered model name.
        policy: The calibrated early-exit policy, if one was saved.
        preprocessing: Mean, std and input size, if saved.
        costs: Cumulative MACs of each exit for one image of ``costs_input_size``.
        costs_input_size: ``(C, H, W)`` the costs were measured at.
        adanet_version: Version of adanet that wrote the directory.
        format_version: Layout version of the directory.
    """

    arch: str
    policy: EarlyExitPolicy | PatienceExitPolicy | None
    preprocessing: PretrainedCfg | None
    costs: tuple[float, ...]
    costs_input_size: tuple[int, int, int]
    adanet_version: str
    format_version: int


def sha256_hex(payload: bytes) -> str:
    """The SHA-256 of ``payload``, as 64 lowercase hex digits."""
    return hashlib.sha256(payload).hexdigest()


def checksum_document(files: Mapping[str, bytes]) -> dict[str, Any]:
    """What ``checksums.json`` holds for these files' contents."""
    return {
        "format_version": FORMAT_VERSION,
        "algorithm": "sha256",
        "files": {name: sha256_hex(payload) for name, payload in files.items()},
    }


def read_checksums(directory: Path, allowed: tuple[str, ...] = MODEL_FILES) -> dict[str, str]:
    """The checked ``checksums.json`` of ``directory``: file name -> SHA-256.

    Raises:
        PretrainedError: Missing, malformed, a newer version, or naming a file that is not one
            of ``allowed``.
    """
    where = directory / CHECKSUM_FILE
    try:
        payload = read_confined(
            directory, CHECKSUM_FILE, max_bytes=MAX_JSON_BYTES, error=PretrainedError
        )
    except FileNotFoundError:
        raise PretrainedError(
            f"{directory} is not a complete adanet model directory: {CHECKSUM_FILE} is missing"
        ) from None
    record = require_keys(
        parse_json(payload, str(where), PretrainedError),
        str(where),
        PretrainedError,
        required=("format_version", "algorithm", "files"),
    )
    check_version(record["format_version"], FORMAT_VERSION, str(where), PretrainedError)
    if record["algorithm"] != "sha256":
        raise PretrainedError(f"{where}: algorithm must be 'sha256', got {record['algorithm']!r}")
    files = record["files"]
    if not isinstance(files, Mapping) or not files:
        raise PretrainedError(f"{where}: 'files' must map file names to SHA-256 digests")
    for name, digest in files.items():
        problem = check_plain_name(name)
        if problem is not None:
            raise PretrainedError(f"{where} names a file outside the directory: {problem}")
        if name not in allowed:
            raise PretrainedError(f"{where} names {name!r}, which is not a model file {allowed}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise PretrainedError(f"{where}: the digest of {name} is not 64 hex digits")
    return {str(k): str(v) for k, v in files.items()}


def read_verified(
    directory: Path, name: str, checksums: Mapping[str, str], max_bytes: int
) -> bytes:
    """The bytes of ``name``, read once (never through a symbolic link) and checked against
    its recorded SHA-256.

    Raises:
        PretrainedError: Not covered by the checksums, missing, a link or not a regular file,
            too large, or altered.
    """
    if name not in checksums:
        raise PretrainedError(f"{directory / CHECKSUM_FILE} does not cover {name}")
    try:
        payload = read_confined(directory, name, max_bytes=max_bytes, error=PretrainedError)
    except FileNotFoundError:
        raise PretrainedError(f"{directory} is incomplete: {name} is missing") from None
    actual = sha256_hex(payload)
    if actual != checksums[name]:
        raise PretrainedError(
            f"{directory / name} was altered or corrupted: its SHA-256 is {actual}, the "
            f"directory records {checksums[name]}; refusing to load it"
        )
    return payload


def check_replaceable(directory: Path, allowed: tuple[str, ...] = MODEL_FILES) -> None:
    """Refuse to replace a folder holding anything but ``allowed`` files (and adanet's own
    temporaries): replacing it would delete them.

    Raises:
        PretrainedError: Naming the other entries.
    """
    others = sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.name not in allowed and not TEMPORARY_NAME.match(entry.name)
    )
    if others:
        raise PretrainedError(
            f"{directory} holds {others[:5]}{' ...' if len(others) > 5 else ''} besides a model "
            "directory's files; saving replaces the whole directory and would delete them: "
            "move them out or save to another directory"
        )
