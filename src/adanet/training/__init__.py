"""Training pieces for multi-exit networks, usable in your own loop or through :func:`fit`.

* :class:`MultiExitLoss` (:mod:`adanet.training.losses`): the multi-exit losses (weighted
  cross-entropy, IMTA self-distillation, gradient equilibrium).
* :mod:`adanet.training.distributed`: helpers for ``torchrun`` / DDP runs.

* :func:`learning_rate_at` / :class:`LRSchedule`: the learning-rate schedules of the original
  RANet/MSDNet ``main.py`` (``adjust_learning_rate``): ``"multistep"`` changes once per epoch,
  ``"cosine"`` once per iteration.
* :class:`Precision`: autocast dtype, gradient scaler and channels-last input in one object.
* :func:`train_one_epoch`: one pass over the training loader (optional autocast, GradScaler,
  channels-last, a tqdm bar), raising :class:`NonFiniteLossError` before any optimizer step
  that would apply a NaN/inf loss.
* :func:`validate`: loss and per-exit top-1/top-5 accuracy.
* :class:`TrainState`, :func:`make_checkpoint`, :func:`save_checkpoint`,
  :func:`load_checkpoint`, :func:`resume`: atomic checkpoints holding model, optimizer,
  scaler, epoch, best score, config, architecture name and every RNG state (torch, CUDA,
  Python, NumPy and the training loader's shuffling generator), so a resumed single-process
  CPU run with ``workers=0`` reproduces the uninterrupted run bit for bit.
* :func:`fit` with :class:`FitOptions`: epochs of training and validation, writing
  ``checkpoint_last.pt`` and ``metrics.csv`` every epoch and ``model_best.pt`` when the final
  exit's validation top-1 improves; :class:`TensorBoardLogger` adds TensorBoard scalars.

Works unchanged under DistributedDataParallel: training metrics are summed over processes,
the NaN check is agreed on by every process (so none is left waiting in a collective), and
only rank 0 writes files.
"""

from adanet.training.checkpoints import (
    BEST_MODEL,
    CHECKPOINT_FORMAT,
    LAST_CHECKPOINT,
    MODEL_FORMAT,
    TrainState,
    capture_rng_state,
    load_checkpoint,
    make_checkpoint,
    restore_rng_state,
    resume,
    save_checkpoint,
)
from adanet.training.epoch_log import METRICS_CSV, EpochCallback, TensorBoardLogger, write_epoch_csv
from adanet.training.fit import FitOptions, fit
from adanet.training.loop import (
    BatchCallback,
    EpochResult,
    LossFunction,
    NonFiniteLossError,
    ValidationResult,
    train_one_epoch,
    unwrap_model,
    validate,
)
from adanet.training.losses import MultiExitLoss
from adanet.training.precision import Precision, make_grad_scaler
from adanet.training.schedule import LRSchedule, LRType, learning_rate_at, set_learning_rate

__all__ = [
    "BEST_MODEL",
    "CHECKPOINT_FORMAT",
    "LAST_CHECKPOINT",
    "METRICS_CSV",
    "MODEL_FORMAT",
    "BatchCallback",
    "EpochCallback",
    "EpochResult",
    "FitOptions",
    "LRSchedule",
    "LRType",
    "LossFunction",
    "MultiExitLoss",
    "NonFiniteLossError",
    "Precision",
    "TensorBoardLogger",
    "TrainState",
    "ValidationResult",
    "capture_rng_state",
    "fit",
    "learning_rate_at",
    "load_checkpoint",
    "make_checkpoint",
    "make_grad_scaler",
    "restore_rng_state",
    "resume",
    "save_checkpoint",
    "set_learning_rate",
    "train_one_epoch",
    "unwrap_model",
    "validate",
    "write_epoch_csv",
]
