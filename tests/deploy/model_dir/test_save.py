"""``save_pretrained``: round trips, all checks before the first byte, and all-or-nothing
replacement."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import adanet
from adanet import EarlyExitPolicy, MSDNet, RANet, RANetConfig
from adanet.deploy.model_dir import (
    PretrainedError,
    PretrainedInfo,
    load_pretrained,
    save_pretrained,
)
from adanet.models import PretrainedCfg
from conftest import load_example
from model_dirs import PREP, small_msdnet, small_ranet

KILL_WRITERS = Path(__file__).resolve().parents[2] / "kill_writers.py"


def _ranet(seed: int = 3, **changes: object) -> RANet:
    torch.manual_seed(seed)
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1, **changes)).eval()  # type: ignore[arg-type]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _assert_unchanged(directory: Path, before: dict[str, bytes]) -> None:
    assert _snapshot(directory) == before
    assert sorted(p.name for p in directory.parent.iterdir()) == [directory.name]
    load_pretrained(directory)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    directory = tmp_path / "m"
    save_pretrained(_ranet(), directory, EarlyExitPolicy([0.9, 0.8, 0.0]), PREP)
    return directory


def test_a_late_failure_leaves_the_old_directory_whole(saved: Path) -> None:
    before = _snapshot(saved)
    callable_norm = _ranet(4, norm=lambda channels: nn.GroupNorm(1, channels))
    with pytest.raises(TypeError, match="callable"):
        save_pretrained(callable_norm, saved, preprocessing=PREP)
    _assert_unchanged(saved, before)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (EarlyExitPolicy([0.5, 0.5]), "decides for 2 exits but the model has 3"),
        (EarlyExitPolicy([0.5, 0.5, 0.0], num_classes=99), "num_classes=99"),
        (EarlyExitPolicy([0.5, 0.5, 0.0], input_size=16), r"input_size=\(16, 16\)"),
    ],
)
def test_a_policy_for_another_model_or_size_is_refused_before_writing(
    saved: Path, policy: EarlyExitPolicy, message: str
) -> None:
    before = _snapshot(saved)
    with pytest.raises(ValueError, match=message):
        save_pretrained(_ranet(5), saved, policy, PREP)
    _assert_unchanged(saved, before)


def test_preprocessing_and_input_size_must_fit_the_model(saved: Path) -> None:
    before = _snapshot(saved)
    one_channel = PretrainedCfg(mean=(0.5,), std=(0.2,), input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="1-channel images; the model takes 3"):
        save_pretrained(_ranet(5), saved, preprocessing=one_channel)
    with pytest.raises(ValueError, match="differs from the preprocessing"):
        save_pretrained(_ranet(5), saved, preprocessing=PREP, input_size=(3, 16, 16))
    _assert_unchanged(saved, before)


def test_a_folder_holding_other_files_is_refused_not_emptied(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(PretrainedError, match=r"notes.txt"):
        save_pretrained(_ranet(), folder, preprocessing=PREP)
    assert _snapshot(folder) == {"notes.txt": b"keep me"}


def test_switching_weight_formats_replaces_the_directory_whole(saved: Path) -> None:
    save_pretrained(_ranet(6), saved, preprocessing=PREP, safetensors=False)
    assert sorted(_snapshot(saved)) == ["checksums.json", "config.json", "model.pt"]
    loaded = load_pretrained(saved).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in _ranet(6).state_dict().items())


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        save_pretrained(_ranet(), tmp_path / "m", preprocessing=PREP)
    finally:
        os.umask(previous)
    directory = tmp_path / "m"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777 & ~umask
    for file in directory.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask


def _kill_trials(kind: str, directory: Path, swap: str, trials: int, seed: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(KILL_WRITERS), kind, str(directory), swap, str(trials), str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("swap", ["exchange", "renames"])
def test_sigkill_at_random_points_leaves_the_old_or_the_new_model(
    tmp_path: Path, swap: str
) -> None:
    directory = tmp_path / "m"
    lines = _kill_trials("model_dir", directory, swap, trials=8, seed=11)
    held = [line["held"] for line in lines[:-1]]
    assert len(held) == 8 and set(held) <= {"A", "B"}, held
    assert lines[-1]["left"] == ["m"]  # a later save cleans what the killed ones left


def test_the_saved_config_passes_the_loaders_validator(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    assert config["num_exits"] == 3 and config["costs"]["input_size"] == [3, 32, 32]
    assert adanet.load_pretrained(saved).pretrained.policy == EarlyExitPolicy([0.9, 0.8, 0.0])


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model = small_ranet()
    policy = EarlyExitPolicy([0.9, 0.8, -math.inf])
    save_pretrained(model, tmp_path / "m", policy=policy, preprocessing=PREP)
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = load_pretrained(tmp_path / "m")
    assert isinstance(loaded, RANet) and not loaded.training
    assert loaded.config == model.config
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(loaded(x), model(x), strict=True):
            assert torch.equal(ours, theirs)
    info = loaded.pretrained
    assert isinstance(info, PretrainedInfo)
    assert info.policy == policy
    assert info.preprocessing == PREP
    assert info.arch == "RANet"
    assert info.costs_input_size == (3, 32, 32)
    assert info.costs == tuple(c.macs for c in adanet.measure_exit_costs(model, 32))
    assert info.adanet_version == adanet.__version__
    assert info.format_version == 1
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["policy"] == policy.to_dict()  # the policy's own JSON form
    assert config["preprocessing"] == {
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
        "input_size": [3, 32, 32],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }


def test_round_trip_with_torch_weights(tmp_path: Path) -> None:
    model = small_msdnet()
    save_pretrained(model, tmp_path, input_size=(3, 32, 32), safetensors=False)
    assert (tmp_path / "model.pt").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded, MSDNet)
    assert loaded.pretrained.policy is None
    # Without explicit preprocessing the model's own pretrained_cfg is saved.
    assert loaded.pretrained.preprocessing == model.pretrained_cfg
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x), model(x), strict=True))
    # Saving again keeps what the directory held, in the other weights format.
    save_pretrained(loaded, tmp_path, policy=EarlyExitPolicy([0.5, 0.5]))
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "model.pt").exists()
    assert load_pretrained(tmp_path).pretrained.policy == EarlyExitPolicy([0.5, 0.5])


def test_safetensors_weights_without_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_pretrained(small_ranet(), tmp_path, preprocessing=PREP)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[safetensors\]"):
        load_pretrained(tmp_path)
    with pytest.raises(ImportError, match="safetensors"):
        save_pretrained(small_ranet(), tmp_path / "b", preprocessing=PREP, safetensors=True)
    save_pretrained(small_ranet(), tmp_path / "c", preprocessing=PREP)  # falls back to torch
    assert (tmp_path / "c" / "model.pt").is_file()


def test_bad_arguments(tmp_path: Path) -> None:
    example = adanet.blocks.ExitHead(4, 2)
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        save_pretrained(example, tmp_path, preprocessing=PREP)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decides for 2 exits but the model has 3"):
        save_pretrained(small_ranet(), tmp_path, EarlyExitPolicy([0.5, 0.5]), PREP)
    with pytest.raises(ValueError, match="one entry per input channel"):
        PretrainedCfg(mean=(0.5,), std=(0.2,), input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="positive"):
        PretrainedCfg(mean=(0.5,), std=(0.0,), input_size=(1, 8, 8))
    with pytest.raises(ValueError, match="optimize_for_inference"):
        save_pretrained(adanet.optimize_for_inference(small_ranet()), tmp_path, preprocessing=PREP)
    with pytest.raises(TypeError, match="preprocessing"):
        save_pretrained(small_ranet(), tmp_path, preprocessing=[1, 2])  # type: ignore[arg-type]


def test_preprocessing_defaults_to_the_models_pretrained_cfg(tmp_path: Path) -> None:
    model = small_ranet()
    model.pretrained_cfg = PREP
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.pretrained.preprocessing == PREP
    assert loaded.pretrained_cfg == PREP


def test_a_registered_network_of_your_own_round_trips(tmp_path: Path) -> None:
    """A network registered with @register_model and built with create_model is saved by
    name and arguments, and loads back with the same weights (examples/custom_network.py)."""
    load_example("custom_network")  # registers "tiny_multiscale"
    torch.manual_seed(0)
    model = adanet.create_model("tiny_multiscale", num_classes=5, growth=4).eval()
    policy = EarlyExitPolicy([0.6] * (model.num_exits - 1) + [-math.inf], num_classes=5)
    prep = PretrainedCfg(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 32, 32))
    save_pretrained(model, tmp_path / "tiny", policy, prep, safetensors=False)
    record = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert record["model"] == "tiny_multiscale"
    assert record["arguments"] == {"num_classes": 5, "growth": 4}
    loaded = load_pretrained(tmp_path / "tiny")
    assert type(loaded) is type(model) and loaded.pretrained.policy == policy
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(loaded(x), model(x), strict=True):
            torch.testing.assert_close(ours, theirs)


def test_a_network_built_directly_says_how_to_save_it(tmp_path: Path) -> None:
    network = load_example("custom_network").TinyMultiScaleNet(num_classes=3)
    with pytest.raises(TypeError, match="create_model"):
        save_pretrained(network, tmp_path / "x", preprocessing=PREP)
