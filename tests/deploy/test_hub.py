"""``EarlyExitHubModel``: the Hugging Face Hub conventions, tried on a local directory and a
stand-in for ``huggingface_hub``."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from adanet import EarlyExitPolicy, RANet
from adanet.deploy.hub import EarlyExitHubModel
from model_dirs import PREP, small_ranet


def test_hub_conventions_on_a_local_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = EarlyExitPolicy([0.7, 0.7, -math.inf])
    hub = EarlyExitHubModel(small_ranet(), policy, PREP.to_dict())
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
