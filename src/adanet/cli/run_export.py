"""Turn an ``adanet train`` run folder into a self-contained model directory
(:func:`export_run`, the ``adanet export`` command)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adanet._safe_load import CheckpointError, read_state_dict
from adanet.deploy.model_dir import PretrainedError, _read_json, save_pretrained
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg
from adanet.models.registry import default_registry
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["export_run"]


def _run_preprocessing(data: str, seed: int, use_valid: bool) -> PretrainedCfg:
    from adanet.data import build_datasets, dataset_info

    try:
        info = dataset_info(data)
    except ValueError as error:
        raise PretrainedError(f"{error} (in the run's config.json)") from None
    known = {"cifar10": CIFAR10_CFG, "cifar100": CIFAR100_CFG, "imagenet": IMAGENET_CFG}
    if info.name.lower() in known:  # fixed constants: no need for the data folder
        return known[info.name.lower()]
    # adanet's own datasets normalise with statistics of the run's own training split.
    splits = build_datasets(info.name, None, use_valid=use_valid, seed=seed)
    if splits.preprocessing is None:  # pragma: no cover - every builder sets it
        raise PretrainedError(f"cannot recover the normalisation of dataset {data!r}")
    return splits.preprocessing


def _run_policy(save: Path, p: float) -> EarlyExitPolicy | None:
    path = save / "policies.json"
    if not path.is_file():
        return None
    record = _read_json(path)
    entries = record.get("policies") if isinstance(record, Mapping) else None
    if not entries:
        return None
    best = min(entries, key=lambda entry: abs(float(entry["p"]) - p))
    return EarlyExitPolicy.from_dict(best["policy"])


def _calibration_batches(run: Mapping[str, object], count: int) -> list[Tensor]:
    """``count`` images of the run's training split (a fixed random choice), in batches."""
    from adanet.data import build_datasets

    data = str(run.get("data", "cifar10"))
    root = run.get("data_root")
    try:
        splits = build_datasets(
            data,
            None if root is None else str(root),
            use_valid=bool(run.get("use_valid", False)),
            seed=int(str(run.get("seed", 0))),
        )
    except (OSError, RuntimeError, ValueError) as error:
        raise PretrainedError(
            f"cannot read the training images of {data!r} to calibrate the int8 model: {error}"
        ) from None
    train: Any = splits.train  # map-style: it has a length
    picks = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    images = torch.stack([train[int(i)][0] for i in picks[:count]])
    return [images[start : start + 64] for start in range(0, images.shape[0], 64)]


def export_run(
    save_dir: str | os.PathLike[str],
    to_dir: str | os.PathLike[str],
    onnx: bool = False,
    *,
    p: float = 1.0,
    int8: bool = False,
    calibration_images: int = 256,
) -> Path:
    """Turn a folder written by ``adanet train`` (and evaluated) into a model directory.

    Reads ``config.json`` (architecture, config, dataset, seed), the weights of
    ``model_best.pt`` (else ``checkpoint_last.pt``), and from ``policies.json`` the budgeted
    policy whose ``p`` is nearest to ``p`` (``p = 1`` aims at equal shares at every exit; none
    when the run was not evaluated). The preprocessing is the dataset's normalisation.

    Args:
        save_dir: The run folder (``adanet train --save``).
        to_dir: The model directory to write.
        onnx: Also write the ONNX stages, manifest and ``early_exit_session.py`` into
            ``to_dir/onnx`` (needs the ``onnx`` extra).
        p: Which budgeted policy to keep (nearest ``p`` of the run's sweep).
        int8: Also write int8 ONNX stages (:func:`adanet.deploy.onnx.quantize_onnx`, calibrated on
            ``calibration_images`` training images of the run's dataset) into
            ``to_dir/onnx_int8``, which ``early_exit_session.py`` runs as it runs
            ``to_dir/onnx``; implies ``onnx``.
        calibration_images: How many training images calibrate the int8 stages.

    Returns:
        ``to_dir``.

    Raises:
        FileNotFoundError: No run folder, config or checkpoint.
        PretrainedError: An unreadable run, or (``int8``) unreadable training images.
        ValueError: ``calibration_images`` below 1.
    """
    if int8 and (
        isinstance(calibration_images, bool)
        or not isinstance(calibration_images, int)
        or calibration_images < 1
    ):
        raise ValueError(f"calibration_images must be an int >= 1, got {calibration_images!r}")
    save = Path(save_dir)
    config_path = save / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{save} is not an adanet run folder: no config.json")
    run = _read_json(config_path)
    if not isinstance(run, Mapping) or "arch" not in run or "config" not in run:
        raise PretrainedError(f"{config_path} lacks 'arch' or 'config'")
    try:
        arch = default_registry.architecture(str(run["arch"]))
    except ValueError:
        raise PretrainedError(
            f"{config_path} names an unknown architecture {run['arch']!r}"
        ) from None
    model = arch.build(arch.config_cls.from_dict(run["config"]))
    for name in ("model_best.pt", "checkpoint_last.pt"):
        if (save / name).is_file():
            weights = save / name
            break
    else:
        raise FileNotFoundError(f"{save} holds neither model_best.pt nor checkpoint_last.pt")
    try:
        model.load_state_dict(read_state_dict(weights), strict=True)
    except (CheckpointError, RuntimeError) as error:
        raise PretrainedError(f"cannot load {weights}: {str(error)[:300]}") from None
    model.eval()
    prep = _run_preprocessing(
        str(run.get("data", "cifar10")), int(run.get("seed", 0)), bool(run.get("use_valid", False))
    )
    policy = _run_policy(save, p)
    target = save_pretrained(model, to_dir, policy, prep)
    if onnx or int8:
        from adanet.deploy.onnx import export_onnx

        export_onnx(model, target / "onnx", prep.input_size, policy, preprocessing=prep)
    if int8:
        from adanet.deploy.onnx import quantize_onnx

        batches = _calibration_batches(run, calibration_images)
        quantize_onnx(target / "onnx", target / "onnx_int8", batches)
    return target
