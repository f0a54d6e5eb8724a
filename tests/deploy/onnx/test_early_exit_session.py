"""``EarlyExitSession``: real early exit with ONNX Runtime agrees with eager ``early_exit``."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import adanet
from adanet import EarlyExitPolicy
from adanet.calibration import calibrate_shares
from adanet.deploy.onnx import EarlyExitSession
from adanet.deploy.onnx import early_exit_session as session_module
from sealed_folders import reseal

NEAR = 1e-5  # confidences this close to a threshold may fall either way (float rounding)
TOLERATED_SHARE = 0.005


def _torch_confidence(logits: torch.Tensor, measure: str) -> torch.Tensor:
    """The measures written out directly in torch, independently of the code under test."""
    probs = torch.softmax(logits.double(), dim=1)
    if measure == "max_prob":
        return probs.max(dim=1).values
    if measure == "margin":
        top = probs.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]
    assert measure == "entropy"
    plogp = torch.where(probs > 0, probs * probs.log(), torch.zeros_like(probs))
    return 1 + plogp.sum(dim=1) / math.log(logits.shape[1])


def _near_threshold(all_logits: list[torch.Tensor], policy: EarlyExitPolicy) -> torch.Tensor:
    """Samples whose confidence at some deciding exit is within NEAR of its threshold."""
    near = torch.zeros(all_logits[0].shape[0], dtype=torch.bool)
    if policy.measure == "patience":
        return near  # integer streaks: no rounding
    for k, logits in enumerate(all_logits[:-1]):
        near |= (_torch_confidence(logits, policy.measure) - policy.thresholds[k]).abs() <= NEAR
    return near


def _compare(
    out: dict[str, np.ndarray],
    model: adanet.EarlyExitNetwork,
    x: torch.Tensor,
    policy: EarlyExitPolicy,
    macs: list[float],
) -> None:
    eager = adanet.early_exit(model, x, policy)
    with torch.no_grad():
        all_logits = model(x)
    ours = torch.from_numpy(out["exit_index"])
    assert out["exit_index"].dtype == np.int64 and out["logits"].dtype == np.float32
    differ = ours != eager.exit_index
    assert bool((~differ | _near_threshold(all_logits, policy)).all())
    assert int(differ.sum()) <= TOLERATED_SHARE * x.shape[0]
    stacked = torch.stack(all_logits)  # [exits, N, classes]
    expected = stacked[ours, torch.arange(x.shape[0])]  # the logits of the exit each one took
    torch.testing.assert_close(torch.from_numpy(out["logits"]), expected, rtol=0, atol=1e-5)
    # The cost follows the exit taken.
    np.testing.assert_array_equal(out["cost"], np.asarray(macs)[out["exit_index"]])


@pytest.fixture(scope="module")
def macs(exported: Any) -> list[float]:
    return [c.macs for c in adanet.measure_exit_costs(exported.model, 32)]


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_batch_sizes_from_the_same_files(exported: Any, macs: list[float], batch: int) -> None:
    session = EarlyExitSession(exported.directory, threads=1)
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    out = session.run(x.numpy())
    assert out["logits"].shape == (batch, 10)
    _compare(out, exported.model, x, exported.policy, macs)
    if batch == 256:  # real early exit: every exit takes some of the samples
        assert set(out["exit_index"].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("measure", ["entropy", "margin", "patience"])
def test_measures_match_eager(exported: Any, macs: list[float], measure: str) -> None:
    model = exported.model
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    if measure == "patience":
        policy = adanet.PatienceExitPolicy(2, 3)
    else:
        other = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            policy = calibrate_shares(model(other), [0.3, 0.3, 0.4], measure=measure)
    session = EarlyExitSession(exported.directory, policy=policy.to_dict(), threads=1)
    assert session.policy["measure"] == measure
    _compare(session.run(x.numpy()), model, x, policy, macs)


def test_temperatures_scale_logits_before_the_measure(exported: Any) -> None:
    model = exported.model
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    temperatures = [3.0, 0.5, 1.0]
    thresholds = list(exported.policy.thresholds)
    data = {"measure": "max_prob", "thresholds": thresholds, "temperatures": temperatures}
    out = EarlyExitSession(exported.directory, policy=data, threads=1).run(x.numpy())
    with torch.no_grad():
        all_logits = model(x)
    scaled = [logits / t for logits, t in zip(all_logits, temperatures, strict=True)]
    expected = EarlyExitPolicy(thresholds).simulate(scaled)
    unscaled = EarlyExitPolicy(thresholds).simulate(all_logits)
    assert not torch.equal(expected, unscaled)  # the temperatures change decisions here
    differ = torch.from_numpy(out["exit_index"]) != expected
    assert bool((~differ | _near_threshold(scaled, EarlyExitPolicy(thresholds))).all())
    chosen = torch.stack(all_logits)[torch.from_numpy(out["exit_index"]), torch.arange(64)]
    torch.testing.assert_close(torch.from_numpy(out["logits"]), chosen, rtol=0, atol=1e-5)


def test_confidence_measures() -> None:
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(1)) * 3
    logits[0, 2] = -math.inf  # a class with zero probability
    for measure in ("max_prob", "entropy", "margin"):
        ours = session_module.confidence(logits.numpy(), measure)
        np.testing.assert_allclose(ours, _torch_confidence(logits, measure).numpy(), atol=1e-12)
    one_class = np.zeros((3, 1), dtype=np.float32)
    np.testing.assert_array_equal(session_module.confidence(one_class, "entropy"), np.ones(3))
    np.testing.assert_array_equal(session_module.confidence(one_class, "margin"), np.ones(3))
    with pytest.raises(ValueError, match="unknown confidence measure 'nope'"):
        session_module.confidence(one_class, "nope")


def test_same_class_as_the_session_module() -> None:
    assert EarlyExitSession is session_module.EarlyExitSession


def _copy(exported: Any, tmp_path: Path, change: Any) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(exported.directory, target)
    path = target / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    reseal(target)
    return target


def test_bad_inputs_and_directories(exported: Any, tmp_path: Path) -> None:
    session = EarlyExitSession(exported.directory)
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 32\], got shape \(2, 3, 16, 16\)"):
        session.run(np.zeros((2, 3, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        session.run(np.zeros((0, 3, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="decides for 2 exits but the model has 3"):
        EarlyExitSession(exported.directory, policy={"thresholds": [0.5, 0.5]})
    with pytest.raises(ValueError, match="unknown confidence measure 'wild'"):
        EarlyExitSession(exported.directory, policy={"thresholds": [1, 1, 1], "measure": "wild"})
    with pytest.raises(ValueError, match="temperatures must be 3 positive"):
        EarlyExitSession(
            exported.directory, policy={"thresholds": [1, 1, 1], "temperatures": [1, 0, 1]}
        )
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        EarlyExitSession(tmp_path)
    no_policy = _copy(exported, tmp_path, lambda m: m.__setitem__("policy", None))
    with pytest.raises(ValueError, match="holds no policy"):
        EarlyExitSession(no_policy)
    shutil.rmtree(no_policy)
    newer = _copy(exported, tmp_path, lambda m: m.__setitem__("format_version", 3))
    with pytest.raises(ValueError, match="format version 3"):
        EarlyExitSession(newer)


_RUN_WITHOUT_TORCH = textwrap.dedent(
    """
    import sys
    import numpy as np
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torch is importable: the test is not isolated")
    from early_exit_session import EarlyExitSession

    directory, images, result = sys.argv[1:4]
    out = EarlyExitSession(directory, threads=1).run(np.load(images))
    np.savez(result, **out)
    leaked = sorted(name for name in ("torch", "adanet") if sys.modules.get(name) is not None)
    if leaked:
        raise SystemExit(f"the session imported {leaked}")
    """
)


@pytest.mark.slow
def test_digits_run_exported_and_served_without_torch(
    tmp_path: Path, make_small_ranet: Any
) -> None:
    pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")
    from adanet.cli.run_export import export_run
    from adanet.data import digits_datasets
    from adanet.deploy.model_dir import load_pretrained

    # A run folder as `adanet train --data digits` leaves it (weights, config, policies).
    model = make_small_ranet()
    splits = digits_datasets(seed=0)
    assert splits.val is not None
    val = torch.stack([splits.val[i][0] for i in range(len(splits.val))])
    test = torch.stack([splits.test[i][0] for i in range(len(splits.test))])
    with torch.no_grad():
        policy = calibrate_shares(model(val), [0.4, 0.3, 0.3])
    run = tmp_path / "run"
    run.mkdir()
    info = {
        "arch": "RANet",
        "config": model.config.to_dict(),
        "data": "digits",
        "seed": 0,
        "use_valid": True,
    }
    (run / "config.json").write_text(json.dumps(info))
    (run / "policies.json").write_text(
        json.dumps({"policies": [{"p": 1.0, "policy": policy.to_dict()}]})
    )
    torch.save({"format": "adanet-model-1", "model": model.state_dict()}, run / "model_best.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_run(run, tmp_path / "out", onnx=True)
    finally:
        torch.set_num_threads(threads)

    # A process where `import torch` fails, with only the exported directory on its path.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is blocked in this test')\n")
    np.save(tmp_path / "images.npy", test.numpy())
    onnx_dir = tmp_path / "out" / "onnx"
    env = {"PYTHONPATH": f"{blocker}:{onnx_dir}", "OMP_WAIT_POLICY": "PASSIVE", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_TORCH, str(onnx_dir), "images.npy", "result.npz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = dict(np.load(tmp_path / "result.npz"))

    loaded = load_pretrained(tmp_path / "out")
    assert loaded.pretrained.policy == policy
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    assert manifest["policy"] == policy.to_dict()
    normalize = splits.test.transform  # type: ignore[attr-defined]
    assert manifest["preprocessing"]["mean"] == list(normalize.mean)
    macs = manifest["costs"]["macs"]
    _compare(out, loaded, test, policy, macs)
    eager = adanet.early_exit(loaded, test, policy, costs=macs)
    targets = torch.tensor([splits.test[i][1] for i in range(len(splits.test))])
    accuracy = float((torch.from_numpy(out["logits"]).argmax(1) == targets).double().mean())
    eager_accuracy = float((eager.logits.argmax(1) == targets).double().mean())
    assert abs(accuracy - eager_accuracy) <= TOLERATED_SHARE
    assert out["cost"].mean() == pytest.approx(
        float(np.mean(np.asarray(macs)[out["exit_index"]])), rel=1e-12
    )
    assert len(set(out["exit_index"].tolist())) == 3
