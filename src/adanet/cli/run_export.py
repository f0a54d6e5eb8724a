"""Turn an ``adanet train`` run folder into a self-contained model directory
(:func:`export_run`, the ``adanet export`` command)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adanet._atomic import TEMPORARY_NAME, replace_directory
from adanet._safe_load import CheckpointError, read_confined, read_state_dict
from adanet._validation import is_int
from adanet.deploy.metadata import MAX_JSON_BYTES, bounded_build, check_state_matches, parse_json
from adanet.deploy.model_dir import PretrainedError, save_pretrained
from adanet.deploy.model_dir.layout import MODEL_FILES
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import CIFAR10_CFG, CIFAR100_CFG, IMAGENET_CFG, PretrainedCfg
from adanet.models.registry import default_registry
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.serialization import policy_from_dict
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["check_export_target", "export_run"]

_ONNX_FOLDERS = ("onnx", "onnx_int8")


def _read_json(path: Path) -> Any:
    try:
        payload = read_confined(
            path.parent, path.name, max_bytes=MAX_JSON_BYTES, error=PretrainedError
        )
    except FileNotFoundError:
        raise PretrainedError(f"{path} is missing") from None
    return parse_json(payload, str(path), PretrainedError)


def check_export_target(save: Path, target: Path) -> None:
    """Refuse a target that is the run folder, lies inside it, or holds it: replacing the
    target whole would overwrite the run's own files (its ``config.json``, its checkpoints).

    Raises:
        PretrainedError: Naming both folders.
    """
    run, out = os.path.realpath(save), os.path.realpath(target)
    if out == run or out.startswith(run + os.sep) or run.startswith(out + os.sep):
        raise PretrainedError(
            f"the model directory {target} would overlap the run folder {save}; export to a "
            "folder outside the run"
        )


def _check_replaceable_tree(directory: Path) -> None:
    # What an earlier export wrote (model files, onnx/, onnx_int8/) may be replaced; anything
    # else in the folder would be deleted with it, so it is refused.
    from adanet.deploy.onnx.exporter import check_replaceable_export

    others = sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.name not in (*MODEL_FILES, *_ONNX_FOLDERS) and not TEMPORARY_NAME.match(entry.name)
    )
    if others:
        raise PretrainedError(
            f"{directory} holds {others[:5]} besides an export's files; exporting replaces the "
            "whole folder and would delete them: move them out or export elsewhere"
        )
    for name in _ONNX_FOLDERS:
        if (directory / name).is_dir():
            check_replaceable_export(directory / name)


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


def _run_policy(save: Path, p: float) -> EarlyExitPolicy | PatienceExitPolicy | None:
    path = save / "policies.json"
    if not path.is_file():
        return None
    record = _read_json(path)
    entries = record.get("policies") if isinstance(record, Mapping) else None
    if not entries:
        return None
    if not isinstance(entries, list) or not all(
        isinstance(e, Mapping)
        and isinstance(e.get("p"), int | float)
        and not isinstance(e.get("p"), bool)
        and isinstance(e.get("policy"), Mapping)
        for e in entries
    ):
        raise PretrainedError(f"{path}: 'policies' must be a list of objects with 'p' and 'policy'")
    best = min(entries, key=lambda entry: abs(float(entry["p"]) - p))
    try:
        return policy_from_dict(best["policy"])
    except ValueError as error:
        raise PretrainedError(f"{path}: the policy of p={best['p']}: {error}") from None


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

    The whole tree (model files, ``onnx/``, ``onnx_int8/``) is made in a fresh folder and
    replaces ``to_dir`` in one swap, after every check.

    Raises:
        FileNotFoundError: No run folder, config or checkpoint.
        PretrainedError: An unreadable run, weights that do not fit its config, a ``to_dir``
            that is, lies in or holds the run folder, or one holding files other than an
            earlier export's; (``int8``) unreadable training images.
        ValueError: ``calibration_images`` below 1.
    """
    if int8 and (not is_int(calibration_images) or calibration_images < 1):
        raise ValueError(f"calibration_images must be an int >= 1, got {calibration_images!r}")
    save, target = Path(save_dir), Path(to_dir)
    check_export_target(save, target)
    run, model = _run_model(save)
    prep = _run_preprocessing(
        str(run.get("data", "cifar10")), int(run.get("seed", 0)), bool(run.get("use_valid", False))
    )
    policy = _run_policy(save, p)
    batches = _calibration_batches(run, calibration_images) if int8 else None
    # The whole tree (model files, onnx/, onnx_int8/) is made in a fresh folder and swapped in
    # at once: an interrupted export leaves the previous one whole.
    with replace_directory(target, check_existing=_check_replaceable_tree) as fresh:
        save_pretrained(model, fresh, policy, prep)
        if onnx or int8:
            from adanet.deploy.onnx import export_onnx

            export_onnx(model, fresh / "onnx", prep.input_size, policy, preprocessing=prep)
        if batches is not None:
            from adanet.deploy.onnx import quantize_onnx

            quantize_onnx(fresh / "onnx", fresh / "onnx_int8", batches)
    return target


def _run_model(save: Path) -> tuple[Mapping[str, Any], EarlyExitNetwork]:
    """The run's config and its model with the best (else last) weights, in eval mode.

    Raises:
        FileNotFoundError: No config or checkpoint.
        PretrainedError: An unreadable run, a config beyond adanet's bounds, or weights that
            do not fit it.
    """
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

    def build() -> EarlyExitNetwork:
        return arch.build(arch.config_cls.from_dict(run["config"]))

    expected = bounded_build(build, str(config_path), PretrainedError).state_dict()
    for name in ("model_best.pt", "checkpoint_last.pt"):
        if (save / name).is_file():
            weights = save / name
            break
    else:
        raise FileNotFoundError(f"{save} holds neither model_best.pt nor checkpoint_last.pt")
    try:
        state = read_state_dict(weights)
    except CheckpointError as error:
        raise PretrainedError(f"cannot load {weights}: {str(error)[:300]}") from None
    check_state_matches(expected, state, str(weights), PretrainedError)
    model = build()
    model.load_state_dict(state, strict=True)
    return run, model.eval()
