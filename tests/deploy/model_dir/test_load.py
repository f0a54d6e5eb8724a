"""``load_pretrained`` on hostile or careless directories: every one a clear PretrainedError
naming the file and field, and nothing built or allocated before everything is checked."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from adanet import EarlyExitPolicy, RANet, RANetConfig
from adanet.deploy.model_dir import PretrainedError, load_pretrained, save_pretrained
from model_dirs import PREP, small_ranet
from sealed_folders import reseal


def _ranet() -> RANet:
    torch.manual_seed(3)
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1)).eval()


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("load") / "m"
    save_pretrained(_ranet(), directory, EarlyExitPolicy([0.9, 0.8, 0.0]), PREP, safetensors=False)
    return directory


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    target = tmp_path / "m"
    target.mkdir()
    for file in original.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def _edit(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    reseal(directory)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            config = config[key]
        config[last] = value

    return change


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("costs.macs", [1.0], "has 1 entries but there are 3 exits"),
        ("costs.macs", [-1, 0, 1e300], "finite and non-negative"),
        ("costs.macs", [3.0, 2.0, 1.0], "cumulative"),
        ("costs.macs", "abc", "sequence of numbers"),
        ("costs.macs", [10**400, 1, 2], "beyond float's range"),
        ("costs", [1, 2, 3], "costs must be a JSON object"),
        ("costs.convention", "guessed", "convention must be one of"),
        ("costs.input_size", [1, 32, 32], "1 channels; the model takes 3"),
        ("preprocessing", {"mean": [0.5], "std": [0.2], "input_size": [1, 32, 32]}, "1-channel"),
        ("preprocessing.input_size", [3, 16, 16], "preprocessing's input_size"),
        ("num_exits", 9, "num_exits is 9 but the network it describes has 3"),
        ("num_exits", True, "num_exits is True"),
        ("format_version", -3, "format_version must be an int >= 1"),
        ("format_version", True, "format_version must be an int >= 1"),
        ("format_version", 99, "newer than this adanet reads"),
        ("format", "something-else", "not an adanet model config"),
        ("weights", "../model.pt", "weights must be"),
        ("typo", 1, r"unknown keys \['typo'\]"),
        ("policy.temperature", [2, 2, 2], r"unknown policy keys \['temperature'\]"),
        ("policy.thresholds", [0.5, 0.5], "decides for 2 exits but the model has 3"),
        ("policy.thresholds", ["nan", 0.5, 0.5], "cannot decode threshold"),
        ("policy.num_classes", 99, "num_classes=99"),
        ("policy.input_size", [16, 16], r"input_size=\(16, 16\)"),
        ("policy.temperatures", "111", "temperatures must be a sequence"),
        ("policy.temperatures", ["1", "1", "1"], "temperatures must be a sequence"),
        ("config.growth_rate", "six", "cannot build"),
    ],
)
def test_invalid_metadata_is_a_clear_error(
    copy: Path, field: str, value: Any, message: str
) -> None:
    _edit(copy, _set(field, value))
    with pytest.raises(PretrainedError, match=message) as caught:
        load_pretrained(copy)
    assert str(copy / "config.json") in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [b'{"a": 1, "a": 2}', b'{"x": NaN}', b"[1, 2", b"\xff\xfe", b'{"x": Infinity}'],
)
def test_non_standard_json_is_refused(copy: Path, payload: bytes) -> None:
    (copy / "config.json").write_bytes(payload)
    reseal(copy)
    with pytest.raises(PretrainedError, match="not valid JSON"):
        load_pretrained(copy)


@pytest.mark.parametrize(
    "files",
    [
        {"../config.json": "0" * 64},
        {"/etc/passwd": "0" * 64},
        {"config.json": "not hex"},
        {"notes.txt": "0" * 64},
        [],
    ],
)
def test_malformed_checksums_are_refused(copy: Path, files: Any) -> None:
    record = json.loads((copy / "checksums.json").read_text())
    record["files"] = files
    (copy / "checksums.json").write_text(json.dumps(record))
    with pytest.raises(PretrainedError, match=r"checksums.json"):
        load_pretrained(copy)


@pytest.mark.parametrize("name", ["config.json", "model.pt"])
def test_symbolic_links_out_of_the_directory_are_refused(
    copy: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / f"outside-{name}"
    (copy / name).rename(outside)
    (copy / name).symlink_to(outside)
    with pytest.raises(PretrainedError, match="symbolic link"):
        load_pretrained(copy)


def test_a_config_asking_for_terabytes_allocates_nothing(copy: Path) -> None:
    _edit(copy, _set("config.num_channels", 10**6))
    started = time.perf_counter()
    with pytest.raises(PretrainedError, match="beyond what adanet loads"):
        load_pretrained(copy)
    assert time.perf_counter() - started < 30


def test_a_config_inflated_beyond_its_weights_is_refused_before_building(copy: Path) -> None:
    _edit(copy, _set("config.growth_rate", 48))  # a few MB more, far within the bounds
    with pytest.raises(PretrainedError, match=r"bytes of weights but model.pt holds"):
        load_pretrained(copy)


def test_weights_of_another_dtype_are_refused_not_cast(copy: Path) -> None:
    state = torch.load(copy / "model.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = (state[name] * 100).to(torch.int64)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (copy / "model.pt").write_bytes(buffer.getvalue())
    reseal(copy)
    with pytest.raises(PretrainedError, match=f"{name!r} is torch.int64"):
        load_pretrained(copy)


@pytest.mark.parametrize("arch", ["MSDNet", "msdnet_cifar10_anytime", "ranet_imagenet_typo"])
def test_a_directory_of_another_architecture_than_asked_for_is_refused(
    original: Path, arch: str
) -> None:
    with pytest.raises(PretrainedError, match=f"not the {arch!r} asked for"):
        load_pretrained(original, arch=arch)


@pytest.mark.parametrize("arch", ["RANet", "ranet", "ranet_cifar10", "ranet_imagenet"])
def test_the_architecture_asked_for_loads(original: Path, arch: str) -> None:
    assert isinstance(load_pretrained(original, arch=arch), RANet)


class _Payload:
    """Any class: unpickling it would import and call code."""


def test_weights_that_need_pickle_are_refused(tmp_path: Path) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP, safetensors=False)
    # Padded to the size of the real weights, so the size check lets it through to unpickling.
    padding = torch.zeros(1_000_000)
    torch.save({"weight": _Payload(), "padding": padding}, tmp_path / "model.pt")
    reseal(tmp_path)
    with pytest.raises(PretrainedError, match="refusing to load"):
        load_pretrained(tmp_path)
