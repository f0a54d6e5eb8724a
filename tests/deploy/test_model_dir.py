"""``save_pretrained`` / ``load_pretrained``, the Hub conventions and ``export_run``."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import adanet
from adanet import EarlyExitPolicy, MSDNet, MSDNetConfig, RANet, RANetConfig
from adanet.cli.run_export import export_run
from adanet.data import CIFAR10_MEAN, CIFAR10_STD
from adanet.deploy.hub import EarlyExitHubModel
from adanet.deploy.model_dir import (
    PretrainedError,
    PretrainedInfo,
    load_pretrained,
    save_pretrained,
)
from adanet.models import PretrainedCfg
from conftest import load_example

PREP = PretrainedCfg(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), input_size=(3, 32, 32))


def _ranet() -> RANet:
    torch.manual_seed(3)
    model = RANet(RANetConfig(num_blocks=1, block_step=1, step=1))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _msdnet() -> MSDNet:
    torch.manual_seed(4)
    config = MSDNetConfig(
        num_blocks=2,
        base=2,
        step=1,
        num_channels=4,
        growth_rate=2,
        growth_factors=(1, 2, 2),
        bottleneck_factors=(1, 2, 2),
        num_classes=5,
    )
    return MSDNet(config).eval()


def _rewrite_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _reseal(directory: Path, name: str) -> None:
    """Record ``name``'s current checksum, as a forger (or a newer adanet) would."""
    digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    _rewrite_json(directory / "checksums.json", lambda d: d["files"].__setitem__(name, digest))


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model = _ranet()
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
    model = _msdnet()
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


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP)
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"model\.safetensors was altered"):
        load_pretrained(tmp_path)


def test_altered_config_and_missing_files_are_refused(tmp_path: Path) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP)
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


def test_newer_format_versions_are_refused(tmp_path: Path) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP)
    _rewrite_json(tmp_path / "config.json", lambda d: d.__setitem__("format_version", 2))
    _reseal(tmp_path, "config.json")
    with pytest.raises(PretrainedError, match="format version 2, newer"):
        load_pretrained(tmp_path)
    _rewrite_json(tmp_path / "checksums.json", lambda d: d.__setitem__("format_version", 3))
    with pytest.raises(PretrainedError, match="format version 3, newer"):
        load_pretrained(tmp_path)


def test_unknown_architecture_is_a_clear_error(tmp_path: Path) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP)
    _rewrite_json(tmp_path / "config.json", lambda d: d.__setitem__("arch", "ResNeXt"))
    _reseal(tmp_path, "config.json")
    with pytest.raises(PretrainedError, match=r"unknown architecture 'ResNeXt'.*MSDNet.*RANet"):
        load_pretrained(tmp_path)


class _Payload:
    """Any class: unpickling it would import and call code."""


def test_weights_that_need_pickle_are_refused(tmp_path: Path) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP, safetensors=False)
    # Padded to the size of the real weights, so the size check lets it through to unpickling.
    padding = torch.zeros(1_000_000)
    torch.save({"weight": _Payload(), "padding": padding}, tmp_path / "model.pt")
    _reseal(tmp_path, "model.pt")
    with pytest.raises(PretrainedError, match="refusing to load"):
        load_pretrained(tmp_path)


def test_safetensors_weights_without_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_pretrained(_ranet(), tmp_path, preprocessing=PREP)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[safetensors\]"):
        load_pretrained(tmp_path)
    with pytest.raises(ImportError, match="safetensors"):
        save_pretrained(_ranet(), tmp_path / "b", preprocessing=PREP, safetensors=True)
    save_pretrained(_ranet(), tmp_path / "c", preprocessing=PREP)  # falls back to torch
    assert (tmp_path / "c" / "model.pt").is_file()


def test_bad_arguments(tmp_path: Path) -> None:
    example = adanet.blocks.ExitHead(4, 2)
    with pytest.raises(TypeError, match="EarlyExitNetwork"):
        save_pretrained(example, tmp_path, preprocessing=PREP)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decides for 2 exits but the model has 3"):
        save_pretrained(_ranet(), tmp_path, EarlyExitPolicy([0.5, 0.5]), PREP)
    with pytest.raises(ValueError, match="one entry per input channel"):
        PretrainedCfg(mean=(0.5,), std=(0.2,), input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="positive"):
        PretrainedCfg(mean=(0.5,), std=(0.0,), input_size=(1, 8, 8))
    with pytest.raises(ValueError, match="optimize_for_inference"):
        save_pretrained(adanet.optimize_for_inference(_ranet()), tmp_path, preprocessing=PREP)
    with pytest.raises(TypeError, match="preprocessing"):
        save_pretrained(_ranet(), tmp_path, preprocessing=[1, 2])  # type: ignore[arg-type]


def test_hub_conventions_on_a_local_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = EarlyExitPolicy([0.7, 0.7, -math.inf])
    hub = EarlyExitHubModel(_ranet(), policy, PREP.to_dict())
    assert hub.save_pretrained(tmp_path / "local") is None
    again = EarlyExitHubModel.from_pretrained(tmp_path / "local")
    assert again.policy == policy and again.preprocessing == PREP
    assert isinstance(again.model, RANet) and not again.model.training

    calls: list[tuple[str, dict[str, Any]]] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, **kwargs: Any) -> Any:
            calls.append(("create_repo", kwargs))
            return types.SimpleNamespace(repo_id=kwargs["repo_id"])

        def upload_folder(self, **kwargs: Any) -> str:
            files = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
            calls.append(("upload_folder", {**kwargs, "files": files}))
            return "https://example.invalid/commit/1"

    fake = types.ModuleType("huggingface_hub")
    fake.HfApi = FakeApi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    url = hub.push_to_hub("me/tiny-ranet", private=True, token="t")
    assert url == "https://example.invalid/commit/1"
    assert calls[1] == (
        "create_repo",
        {"repo_id": "me/tiny-ranet", "private": True, "exist_ok": True},
    )
    assert calls[2][1]["files"] == ["checksums.json", "config.json", "model.safetensors"]
    assert calls[2][1]["repo_id"] == "me/tiny-ranet"


def test_hub_ids_need_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[hub\]"):
        EarlyExitHubModel.from_pretrained("someone/some-model")


def _fake_run(folder: Path, model: RANet, data: str) -> None:
    folder.mkdir()
    info = {"arch": "RANet", "config": model.config.to_dict(), "data": data, "seed": 0}
    (folder / "config.json").write_text(json.dumps(info))
    torch.save({"format": "adanet-model-1", "model": model.state_dict()}, folder / "model_best.pt")
    policies = [
        {"p": 0.5, "policy": EarlyExitPolicy([0.1, 0.2, -math.inf]).to_dict()},
        {"p": 1.05, "policy": EarlyExitPolicy([0.6, 0.7, -math.inf]).to_dict()},
    ]
    (folder / "policies.json").write_text(json.dumps({"policies": policies}))


def test_export_run_makes_a_model_directory(tmp_path: Path) -> None:
    model = _ranet()
    _fake_run(tmp_path / "run", model, "cifar10")
    export_run(tmp_path / "run", tmp_path / "out")
    loaded = load_pretrained(tmp_path / "out")
    assert loaded.pretrained.policy == EarlyExitPolicy([0.6, 0.7, -math.inf])  # p nearest 1
    assert loaded.pretrained.preprocessing == PretrainedCfg(
        input_size=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD
    )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[-1], model(x)[-1])
    export_run(tmp_path / "run", tmp_path / "low", p=0.4)
    assert load_pretrained(tmp_path / "low").pretrained.policy == EarlyExitPolicy(
        [0.1, 0.2, -math.inf]
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        export_run(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"neither model_best\.pt"):
        export_run(tmp_path / "out", tmp_path / "x")  # a model directory is not a run


def test_preprocessing_defaults_to_the_models_pretrained_cfg(tmp_path: Path) -> None:
    model = _ranet()
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


def test_an_unregistered_model_name_is_a_clear_error(tmp_path: Path) -> None:
    load_example("custom_network")
    model = adanet.create_model("tiny_multiscale", num_classes=2).eval()
    save_pretrained(model, tmp_path / "tiny", preprocessing=PREP, safetensors=False)
    registry = adanet.models.registry.default_registry
    entry = registry.entry("tiny_multiscale")
    registry.unregister("tiny_multiscale")
    try:
        with pytest.raises(PretrainedError, match="import the module that registers it"):
            load_pretrained(tmp_path / "tiny")
    finally:
        registry.register("tiny_multiscale", entry)
