"""``BackgroundExport``: the report's ONNX export made in a spawned process (adanet.cli.
background_export). The stages it writes run in ONNX Runtime and equal the model; a failure in
the child is named in the parent; a network the child could not rebuild is refused up front."""

from __future__ import annotations

import pytest
import torch

import adanet
from adanet import RANet, RANetConfig
from adanet.cli.background_export import BackgroundExport
from adanet.cli.report import timing_networks
from conftest import load_example

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _model() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1, num_classes=4)).eval()


@pytest.mark.slow
def test_the_stages_made_in_the_child_equal_the_model_as_it_was_at_the_start() -> None:
    from adanet.deploy.onnx import OnnxRuntimeNetwork

    model = _model()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        with BackgroundExport(model, (3, 32, 32)) as export:
            for parameter in model.parameters():
                parameter.add_(1.0)  # changed after the start: not part of the export
            network = OnnxRuntimeNetwork(export.result(), threads=1)
            for ours, theirs in zip(network(x), expected, strict=True):
                torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
            folder = export.directory
    assert not folder.exists()  # closing removes the folder


def test_a_failure_in_the_child_is_named() -> None:
    export = BackgroundExport(_model(), (1, 32, 32))  # the model takes 3 channels
    try:
        with pytest.raises(RuntimeError, match="background ONNX export failed: ValueError"):
            export.result()
    finally:
        export.close()


def test_closing_stops_a_running_export() -> None:
    export = BackgroundExport(_model(), (3, 32, 32))
    export.close()
    assert not export.directory.parent.exists()


def test_a_network_registered_by_the_users_module_is_refused() -> None:
    load_example("custom_network")  # registers "tiny_multiscale" in this process only
    model = adanet.create_model("tiny_multiscale", num_classes=3).eval()
    with pytest.raises(TypeError, match="registered by the user's own module"):
        BackgroundExport(model, (3, 32, 32))


class _Failed:
    """Stands for a background export that failed."""

    def result(self) -> None:
        raise RuntimeError("the background ONNX export failed: MemoryError: ")


@pytest.mark.slow
def test_the_report_exports_itself_when_the_background_export_failed() -> None:
    said: list[str] = []
    networks = timing_networks(
        _model(),
        (3, 32, 32),
        onnx=True,
        say=lambda *parts: said.append(" ".join(map(str, parts))),
        exported=_Failed(),  # type: ignore[arg-type]
    )
    assert list(networks) == ["eager", "optimized", "ONNX Runtime"]
    assert said and "exporting again in this process" in said[0]
