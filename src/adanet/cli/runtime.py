"""What both commands need to run a spec: seeding, data, weights, the saved run settings."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adanet._safe_load import CheckpointError, read_state_dict
from adanet.cli.errors import CLIError
from adanet.cli.spec import RunSpec
from adanet.compat.checkpoints import load_reference_checkpoint
from adanet.data import DataSplits, build_datasets, dataset_info
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.training import load_checkpoint

__all__ = ["load_data", "load_weights", "make_optimizer", "read_run_config", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python's, torch's and (when installed) NumPy's generators."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional for adanet itself
        pass


def load_data(spec: RunSpec) -> DataSplits:
    """The spec's dataset splits.

    Raises:
        CLIError: A missing ``--data-root``, or a dataset that cannot be read.
    """
    if dataset_info(spec.data).needs_root and spec.data_root is None:
        raise CLIError(f"--data {spec.data} needs --data-root DIR (the folder holding the dataset)")
    try:
        return build_datasets(
            spec.data,
            spec.data_root,
            use_valid=spec.use_valid,
            seed=spec.seed,
            download=spec.download,
        )
    except (FileNotFoundError, ImportError, ValueError, RuntimeError, OSError) as error:
        raise CLIError(f"cannot load --data {spec.data}: {error}") from None


def make_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The spec's optimizer over ``model``'s parameters."""
    params = model.parameters()
    if spec.optimizer == "sgd":
        # The original: plain (not Nesterov) momentum SGD with L2 weight decay.
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)


def read_run_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json``, or ``{}`` when there is none.

    Raises:
        CLIError: The file is unreadable, not JSON, or not a JSON object.
    """
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CLIError(f"cannot read the run settings {str(path)!r}: {error}") from None
    if not isinstance(loaded, dict):
        raise CLIError(f"{str(path)!r} is not a run's config.json (not a JSON object)")
    return loaded


def load_weights(model: EarlyExitNetwork, path: Path, say: Callable[..., None]) -> None:
    """Load an adanet checkpoint or an original-format one into ``model``.

    Raises:
        CLIError: The file does not fit the model or cannot be read.
    """
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        checkpoint = {}
    if isinstance(checkpoint.get("model"), Mapping) and str(
        checkpoint.get("format", "")
    ).startswith("adanet-"):
        try:
            model.load_state_dict(read_state_dict(path))
        except (RuntimeError, CheckpointError) as error:
            raise CLIError(f"{path} was made for another model: {str(error)[:300]}") from None
        return
    try:
        load_reference_checkpoint(model, path)  # the originals' .pth.tar files
    except (CheckpointError, FileNotFoundError) as error:
        raise CLIError(str(error)) from None
    say(f"loaded the original-format checkpoint {path}")
