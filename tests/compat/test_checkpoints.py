import os
import pickle
from pathlib import Path

import pytest
import torch

import adanet
from adanet import RANet, RANetConfig
from adanet.compat import CheckpointError, load_reference_checkpoint, read_reference_config
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig


def _small() -> RANet:
    return RANet(
        RANetConfig(
            num_blocks=1,
            block_step=1,
            step=1,
            scale_list=(1, 2),
            growth_factors=(2, 1),
            bottleneck_factors=(2, 1),
        )
    )


def test_loads_a_bare_state_dict_and_an_adanet_checkpoint(tmp_path: Path) -> None:
    source, target = _small(), _small()
    torch.save(source.state_dict(), tmp_path / "bare.pt")
    load_reference_checkpoint(target, tmp_path / "bare.pt")
    for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "ours.pt")
    load_reference_checkpoint(_small(), tmp_path / "ours.pt")


def test_another_configuration_says_what_disagrees(reference_dir: Path) -> None:
    config = read_reference_config(
        arch="RANet", path_or_text=reference_dir / "ranet" / "cifar10.args.txt"
    )
    import dataclasses

    model = RANet(dataclasses.replace(config, num_classes=100))
    with pytest.raises(CheckpointError, match="exit 0 has 10 classes in the checkpoint, 100 in"):
        load_reference_checkpoint(model, reference_dir / "ranet" / "cifar10.pth.tar")
    fewer = RANet(dataclasses.replace(config, block_step=1))
    with pytest.raises(CheckpointError, match="the checkpoint has 8 exits, the model 5"):
        load_reference_checkpoint(fewer, reference_dir / "ranet" / "cifar10.pth.tar")


def test_truncated_file(tmp_path: Path) -> None:
    torch.save(_small().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or is not a PyTorch checkpoint"):
        load_reference_checkpoint(_small(), tmp_path / "cut.pt")


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


# The planted pickle is written with protocol 4 on purpose; torch warns before refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_pickle_that_would_run_code_is_refused_and_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": _Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to load") as refused:
        load_reference_checkpoint(_small(), tmp_path / "evil.pt")
    assert "\x1b" not in str(refused.value)  # no terminal colour codes in the message
    assert not (tmp_path / "pwned").exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        load_reference_checkpoint(_small(), raw)
    assert not (tmp_path / "pwned").exists()


def test_missing_file_and_no_state_dict(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_reference_checkpoint(_small(), tmp_path / "nope.pt")
    torch.save({"epoch": 1, "state_dict": {"a": 1}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_reference_checkpoint(_small(), tmp_path / "odd.pt")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, not a checkpoint",
        b"PK\x03\x04 broken zip",
        b"\x80\x02}q\x00.",
        bytes(range(256)),
    ],
    ids=["empty", "text", "broken-zip", "bare-pickle", "binary"],
)
def test_any_file_that_is_not_a_checkpoint_gets_a_checkpoint_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "foreign.pth"
    path.write_bytes(content)
    model = adanet.RANet(adanet.RANetConfig())
    with pytest.raises(CheckpointError, match=r"foreign\.pth"):
        adanet.compat.load_reference_checkpoint(model, path)


def test_paths_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    model = adanet.RANet(adanet.RANetConfig())
    with pytest.raises(FileNotFoundError, match="is a directory"):
        adanet.compat.load_reference_checkpoint(model, tmp_path)
    with pytest.raises(TypeError, match="checkpoint path"):
        adanet.compat.load_reference_checkpoint(model, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        adanet.compat.load_reference_checkpoint("model", tmp_path / "x.pt")  # type: ignore[arg-type]


def test_reference_checkpoint_for_another_config_is_refused(reference_dir: Path) -> None:
    model = MSDNet(MSDNetConfig.preset("cifar10_anytime"))  # 10 classes, not 100
    with pytest.raises(CheckpointError, match="classes"):
        load_reference_checkpoint(model, reference_dir / "msdnet" / "cifar100_anytime.pth.tar")
