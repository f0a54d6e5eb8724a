"""Tests of adanet.training: schedules, one epoch, NaN handling, atomic checkpoints, resume."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from adanet import RANet, RANetConfig
from adanet.data import digits_datasets
from adanet.training import (
    BEST_MODEL,
    LAST_CHECKPOINT,
    METRICS_CSV,
    FitOptions,
    LRSchedule,
    NonFiniteLossError,
    Precision,
    TensorBoardLogger,
    TrainState,
    fit,
    learning_rate_at,
    load_checkpoint,
    make_grad_scaler,
    resume,
    save_checkpoint,
    train_one_epoch,
    validate,
)
from adanet.training.losses import MultiExitLoss


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Small convolutions gain nothing from a second thread, and under pytest-xdist on a busy
    # two-core machine spinning OpenMP threads slow them down many times over.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = RANetConfig(
    num_blocks=1,
    num_channels=4,
    growth_rate=4,
    growth_factors=(2, 1),
    bottleneck_factors=(2, 1),
    block_step=1,
    scale_list=(1, 2),
    step=1,
    num_classes=10,
)


@pytest.fixture(scope="module")
def digits() -> Any:
    return digits_datasets(seed=0, use_valid=True)


def _loaders(splits: Any, seed: int = 0) -> tuple[DataLoader[Any], DataLoader[Any]]:
    train = Subset(splits.train, range(160))
    val = Subset(splits.val, range(64))
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=32, shuffle=True, generator=generator),
        DataLoader(val, batch_size=64),
    )


def _setup(splits: Any, seed: int) -> tuple[RANet, torch.optim.Optimizer, Any, Any]:
    torch.manual_seed(seed)
    model = RANet(TINY)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    train, val = _loaders(splits, seed)
    return model, optimizer, train, val


def _options(save_dir: Path | None, **changes: Any) -> FitOptions:
    return FitOptions(save_dir=save_dir, progress=False, **changes)


# --------------------------------------------------------------------------------- schedules


def test_multistep_matches_the_original_cifar_rule() -> None:
    values = {e: learning_rate_at(e, 0, 10, 0.1, 300, "multistep") for e in (0, 149, 150, 224, 225)}
    assert values[0] == pytest.approx(0.1)
    assert values[149] == pytest.approx(0.1)
    assert values[150] == pytest.approx(0.01)
    assert values[224] == pytest.approx(0.01)
    assert values[225] == pytest.approx(0.001)
    # The batch index does not matter for multistep.
    assert learning_rate_at(150, 7, 10, 0.1, 300, "multistep") == values[150]


def test_multistep_imagenet_rule_and_decay_rate() -> None:
    assert learning_rate_at(29, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.1)
    assert learning_rate_at(30, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.01)
    assert learning_rate_at(60, 0, 5, 0.1, 90, "multistep", step_every=30) == pytest.approx(0.001)
    assert learning_rate_at(8, 0, 5, 1.0, 10, "multistep", decay_rate=0.5) == pytest.approx(0.25)


def test_cosine_is_per_iteration() -> None:
    # t = 2 * 100 + 50 = 250 of T = 1000: 0.5 * 0.1 * (1 + cos(pi / 4)).
    assert learning_rate_at(2, 50, 100, 0.1, 10, "cosine") == pytest.approx(0.0853553390593)
    assert learning_rate_at(0, 0, 100, 0.1, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate_at(5, 0, 100, 0.1, 10, "cosine") == pytest.approx(0.05)
    assert learning_rate_at(9, 99, 100, 0.1, 10, "cosine") == pytest.approx(
        0.05 * (1 + math.cos(math.pi * 999 / 1000))
    )
    schedule = LRSchedule(base_lr=0.1, epochs=10, lr_type="cosine")
    assert schedule(2, 50, 100) == learning_rate_at(2, 50, 100, 0.1, 10, "cosine")


def test_unknown_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="lr_type must be one of 'multistep', 'cosine', got"):
        learning_rate_at(0, 0, 1, 0.1, 1, "linear")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- one epoch


def test_train_one_epoch_sets_lr_and_reports_every_exit(digits: Any) -> None:
    model, optimizer, train, val = _setup(digits, 0)
    seen: list[float] = []

    def schedule(epoch: int, batch: int, batches: int) -> float:
        seen.append(0.05 + batch)
        return 0.05 + batch

    result = train_one_epoch(
        model, train, optimizer, MultiExitLoss("ce"), epoch=0, lr_schedule=schedule, progress=False
    )
    assert len(result.exit_top1) == model.num_exits
    assert all(0.0 <= a <= 1.0 for a in result.exit_top1)
    assert result.num_samples == 160
    assert result.lr == 0.05
    assert seen == [0.05 + b for b in range(len(train))]
    assert optimizer.param_groups[0]["lr"] == seen[-1]
    checked = validate(model, val, MultiExitLoss("ce"))
    assert checked.num_samples == 64
    assert len(checked.exit_top5) == model.num_exits
    assert all(t5 >= t1 for t1, t5 in zip(checked.exit_top1, checked.exit_top5, strict=True))


def test_runs_without_tqdm(digits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model, optimizer, train, _ = _setup(digits, 0)
    result = train_one_epoch(model, train, optimizer, MultiExitLoss("ce"), epoch=0, progress=True)
    assert result.num_samples == 160


# ---------------------------------------------------------------------------------- NaN


class _NaNAt:
    """Cross-entropy that turns NaN at one call."""

    def __init__(self, call: int) -> None:
        self.call = call
        self.calls = 0
        self.inner = MultiExitLoss("ce")

    def __call__(self, logits: list[Tensor], target: Tensor) -> Tensor:
        loss = self.inner(logits, target)
        self.calls += 1
        return loss * float("nan") if self.calls == self.call else loss


def test_nan_loss_stops_before_the_step(digits: Any) -> None:
    model, optimizer, train, _ = _setup(digits, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch 1/5") as caught:
        train_one_epoch(model, train, optimizer, _NaNAt(1), epoch=0, progress=False)
    assert caught.value.epoch == 0 and caught.value.batch_index == 0
    after = model.state_dict()
    for key, value in before.items():
        if key.endswith("num_batches_tracked") or "running" in key:
            continue  # the forward pass itself updates BatchNorm statistics
        assert torch.equal(value, after[key]), key


def test_nan_loss_leaves_the_checkpoint_untouched(digits: Any, tmp_path: Path) -> None:
    model, optimizer, train, val = _setup(digits, 0)
    loss = _NaNAt(len(train) + 1 + 2)  # (validation calls it once) second epoch, second batch
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 2/5"):
        fit(model, train, val, optimizer, loss, epochs=3, options=_options(tmp_path))
    assert load_checkpoint(tmp_path / LAST_CHECKPOINT)["next_epoch"] == 1
    assert (tmp_path / BEST_MODEL).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST_CHECKPOINT, METRICS_CSV, BEST_MODEL]
    assert len((tmp_path / METRICS_CSV).read_text().splitlines()) == 2  # header + epoch 0


# ---------------------------------------------------------------------------- checkpoints


def test_interrupted_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint({"weights": torch.arange(5.0), "epoch": 1}, path)
    good = path.read_bytes()
    real_save = torch.save

    def dying_save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"weights": torch.zeros(5), "epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == good
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [LAST_CHECKPOINT]  # no temporary left


class _Stop(Exception):
    pass


def test_resume_reproduces_an_uninterrupted_run(digits: Any, tmp_path: Path) -> None:
    schedule = LRSchedule(base_lr=0.1, epochs=3, lr_type="cosine")

    model, optimizer, train, val = _setup(digits, 0)
    straight = fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=3,
        options=_options(tmp_path / "straight", lr_schedule=schedule),
    )
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, train, val = _setup(digits, 0)

    def stop_after_first(record: dict[str, Any]) -> None:
        if record["epoch"] == 0:
            raise _Stop  # the process "dies" after epoch 0 was saved

    with pytest.raises(_Stop):
        fit(
            model,
            train,
            val,
            optimizer,
            MultiExitLoss("ce"),
            epochs=3,
            options=_options(tmp_path / "resumed", lr_schedule=schedule, on_epoch=stop_after_first),
        )
    # A new process: other initial weights and RNG states, which resume must replace.
    model, optimizer, train, val = _setup(digits, 123)
    state = resume(tmp_path / "resumed" / LAST_CHECKPOINT, model, optimizer, loader=train)
    assert state.next_epoch == 1
    final = fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=3,
        state=state,
        options=_options(tmp_path / "resumed", lr_schedule=schedule),
    )
    got = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key
    assert [r["train_loss"] for r in final.history] == [r["train_loss"] for r in straight.history]
    assert final.best == straight.best and final.best_epoch == straight.best_epoch
    # The CSV log holds the whole run, the resumed epochs included, one line per epoch.
    lines = (tmp_path / "resumed" / METRICS_CSV).read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1", "2"]


def test_metrics_csv_has_one_column_per_exit(digits: Any, tmp_path: Path) -> None:
    model, optimizer, train, val = _setup(digits, 0)
    seen: list[tuple[int, int, int]] = []

    def on_batch(epoch: int, index: int, total: int, loss: float) -> None:
        seen.append((epoch, index, total))

    fit(
        model,
        train,
        val,
        optimizer,
        MultiExitLoss("ce"),
        epochs=1,
        options=_options(tmp_path, on_batch=on_batch),
    )
    assert seen == [(0, i, len(train)) for i in range(len(train))]  # fit and epoch agree
    header, row = (tmp_path / METRICS_CSV).read_text().splitlines()
    columns = header.split(",")
    assert columns[:6] == ["epoch", "lr", "seconds", "train_loss", "val_loss", "is_best"]
    for key in ("train_top1", "val_top1", "val_top5"):
        assert [c for c in columns if c.startswith(key + "_")] == [
            f"{key}_exit{i}" for i in range(model.num_exits)
        ]
    values = dict(zip(columns, row.split(","), strict=True))
    assert values["epoch"] == "0" and values["is_best"] == "True"
    assert 0.0 <= float(values["val_top1_exit1"]) <= float(values["val_top5_exit1"]) <= 1.0
    assert float(values["lr"]) == optimizer.param_groups[0]["lr"]


def test_fit_refuses_an_epoch_count_below_the_state(digits: Any) -> None:
    model, optimizer, train, val = _setup(digits, 0)
    with pytest.raises(ValueError, match="epochs=2 is below the next epoch to run \\(5\\)"):
        fit(model, train, val, optimizer, MultiExitLoss("ce"), epochs=2, state=TrainState(5))


# ------------------------------------------------------------------------------- precision


def test_precision_from_command_line_names() -> None:
    assert Precision.create(None, "cpu") == Precision()
    bf16 = Precision.create("bf16", "cpu", channels_last=True)
    assert bf16.amp_dtype == torch.bfloat16 and bf16.scaler is None and bf16.channels_last
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        Precision.create("fp16", "cpu")
    with pytest.raises(ValueError, match="amp must be one of 'bf16', 'fp16', got 'fp8'"):
        Precision.create("fp8", "cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amp_dtype must be"):
        Precision(amp_dtype=torch.float64)


def test_bf16_precision_trains_in_channels_last(digits: Any) -> None:
    model, optimizer, train, _ = _setup(digits, 0)
    precision = Precision.create("bf16", "cpu", channels_last=True)
    result = train_one_epoch(
        model, train, optimizer, MultiExitLoss("ce"), epoch=0, precision=precision, progress=False
    )
    assert math.isfinite(result.loss)


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_grad_scaler_is_the_device_agnostic_one_when_torch_has_it() -> None:
    scaler = make_grad_scaler("cuda")
    assert isinstance(scaler, torch.amp.GradScaler)


# ----------------------------------------------------------------------------- tensorboard


def test_tensorboard_logger_writes_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path)
    record = {
        "epoch": 0,
        "lr": 0.1,
        "train_loss": 2.0,
        "val_loss": 1.5,
        "train_top1": [0.25, 0.5],
        "val_top1": [0.3, 0.6],
        "val_top5": [0.9, 1.0],
    }
    logger(record)
    logger({**record, "epoch": 1, "lr": 0.01, "val_loss": None})
    logger.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {
        "loss/train",
        "loss/val",
        "lr",
        "top1_train/exit0",
        "top1_train/exit1",
        "top1_val/exit0",
        "top1_val/exit1",
        "top5_val/exit0",
        "top5_val/exit1",
    }
    assert [e.value for e in events.Scalars("lr")] == pytest.approx([0.1, 0.01])
    assert [e.step for e in events.Scalars("loss/val")] == [0]  # None is not written
    assert events.Scalars("top1_val/exit1")[0].value == pytest.approx(0.6)


def test_tensorboard_logger_names_the_extra_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"adanet-torch\[tensorboard\]"):
        TensorBoardLogger(tmp_path)
