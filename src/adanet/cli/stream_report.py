"""A run's shifted-stream section: does early exit hold its budget when the stream shifts?

From a run folder written by ``adanet train`` (its ``config.json`` and weights), one forward
pass over the calibration (validation) and test images gives every exit's logits. The test
images are then put in a stream of alternating easy and hard blocks (split by the first exit's
confidence, :func:`adanet.measure.shifted_stream`), and three ways to spend a mean cost of
``target_share`` of the last exit are compared per window of the stream
(:func:`adanet.measure.evaluate_stream`): thresholds calibrated once, an
:class:`~adanet.calibration.OnlineController` in cost mode, and the calibrated thresholds under a
hard per-batch budget. A controller in accuracy mode is reported next to the static policy for
the same drop. :func:`write_stream_section` writes ``stream.png`` and ``stream.json`` and
appends the section to ``report.md``; :func:`render_stream_section` is the pure markdown part.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from adanet._atomic import atomic_path, write_json_atomic, write_text_atomic
from adanet._safe_load import read_state_dict
from adanet.calibration.online import OnlineController
from adanet.calibration.risk import calibrate_risk
from adanet.calibration.shares import calibrate_for_cost
from adanet.costs.counting import measure_exit_costs
from adanet.measure.stream import PerBatchBudget, StreamEvaluation, evaluate_stream, shifted_stream
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.registry import default_registry
from adanet.policies.confidence import exit_confidences
from adanet.policies.protocol import ExitDecider

__all__ = [
    "RunLogits",
    "StreamComparison",
    "compare_on_stream",
    "load_run_model",
    "plot_stream_costs",
    "render_stream_section",
    "run_logits",
    "write_stream_section",
]


def load_run_model(folder: str | os.PathLike[str]) -> EarlyExitNetwork:
    """The trained network of an ``adanet train`` folder (best weights, else the last), in eval
    mode.

    Raises:
        FileNotFoundError: No ``config.json`` or no weights in the folder.
    """
    run = Path(folder)
    settings = json.loads((run / "config.json").read_text(encoding="utf-8"))
    arch = default_registry.architecture(str(settings["arch"]))
    model = arch.build(arch.config_cls.from_dict(settings["config"]))
    names = ("model_best.pt", "checkpoint_last.pt")
    weights = next((run / name for name in names if (run / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{run} holds neither model_best.pt nor checkpoint_last.pt")
    model.load_state_dict(read_state_dict(weights), strict=True)
    return model.eval()


@dataclass(frozen=True)
class RunLogits:
    """All-exit logits of a run's calibration and test images.

    Attributes:
        calibration: ``[exits, N, classes]`` of the validation images.
        calibration_targets: ``[N]`` their labels.
        test: ``[exits, M, classes]`` of the test images.
        test_targets: ``[M]`` their labels.
        costs: Cumulative MACs of each exit per image.
    """

    calibration: Tensor
    calibration_targets: Tensor
    test: Tensor
    test_targets: Tensor
    costs: list[float]


def _all_exit_logits(model: EarlyExitNetwork, dataset: Dataset[Any]) -> tuple[Tensor, Tensor]:
    logits, targets = [], []
    with torch.no_grad():
        for images, labels in DataLoader(dataset, batch_size=512):
            logits.append(torch.stack(model(images)))
            targets.append(torch.as_tensor(labels))
    return torch.cat(logits, dim=1), torch.cat(targets)


def run_logits(folder: str | os.PathLike[str], *, test_views: int | None = None) -> RunLogits:
    """One forward pass of the run's model over its validation and test images.

    Args:
        folder: An ``adanet train`` folder trained with a validation split (``--use-valid``).
        test_views: For ``digits-affine``, fixed views per test digit (default: the run's 12);
            more views give a longer stream of distinct test images.

    Raises:
        ValueError: The run had no validation split to calibrate on.
    """
    from adanet.data import build_datasets
    from adanet.data.digits_affine import digits_affine_datasets

    run = Path(folder)
    settings = json.loads((run / "config.json").read_text(encoding="utf-8"))
    data, seed = str(settings.get("data")), int(settings.get("seed", 0))
    if not settings.get("use_valid", False):
        raise ValueError(f"{run} was trained without --use-valid: no images to calibrate on")
    if data == "digits-affine":
        splits = digits_affine_datasets(seed=seed, use_valid=True, test_views=test_views or 12)
    else:
        splits = build_datasets(data, settings.get("data_root"), use_valid=True, seed=seed)
    assert splits.val is not None
    model = load_run_model(run)
    val, val_targets = _all_exit_logits(model, splits.val)
    test, test_targets = _all_exit_logits(model, splits.test)
    shape = (splits.in_channels, splits.image_size, splits.image_size)
    convention = settings.get("cost_convention", "actual")
    costs = [c.macs for c in measure_exit_costs(model, shape, convention)]
    return RunLogits(val, val_targets, test, test_targets, costs)


@dataclass(frozen=True)
class StreamComparison:
    """Cost-mode and accuracy-mode comparisons on one shifted stream.

    Attributes:
        cost: Static, controlled and per-batch-budget runs for ``target_cost``.
        accuracy: Static and controlled runs for ``max_accuracy_drop``.
        target_cost: The mean cost per image aimed at.
        max_accuracy_drop: The disagreement with the last exit allowed.
        block_size: Images per block of the stream.
        full_cost: The last exit's cost per image.
    """

    cost: StreamEvaluation
    accuracy: StreamEvaluation
    target_cost: float
    max_accuracy_drop: float
    block_size: int
    full_cost: float


def compare_on_stream(
    logits: RunLogits,
    *,
    target_share: float = 0.45,
    max_accuracy_drop: float = 0.02,
    block_size: int = 1000,
    num_blocks: int = 10,
    window: int = 500,
    batch_size: int = 32,
    seed: int = 0,
) -> StreamComparison:
    """Static thresholds, an online controller and a per-batch budget on a shifted stream of
    the test images (see the module docstring); every policy calibrated on the calibration
    logits only."""
    costs = logits.costs
    target = target_share * costs[-1]
    order = shifted_stream(
        exit_confidences(logits.test[0], "max_prob"),
        block_size=block_size,
        num_blocks=num_blocks,
        seed=seed,
    )
    stream, targets = logits.test[:, order.index], logits.test_targets[order.index]
    cal = logits.calibration
    static = calibrate_for_cost(cal, costs, target)
    common: dict[str, Any] = {
        "targets": targets,
        "batch_size": batch_size,
        "window": window,
        "switches": order.switches,
    }
    cost_runs: dict[str, ExitDecider | PerBatchBudget] = {
        "static thresholds": static,
        "online controller": OnlineController(cal, costs, target_cost=target),
        "per-batch budget": PerBatchBudget(static, target),
    }
    drop_runs: dict[str, ExitDecider | PerBatchBudget] = {
        "static thresholds": calibrate_risk(
            cal,
            None,
            max_accuracy_drop=max_accuracy_drop,
            against="last_exit",
            method="naive",
            costs=costs,
        ),
        "online controller": OnlineController(cal, costs, max_accuracy_drop=max_accuracy_drop),
    }
    return StreamComparison(
        cost=evaluate_stream(stream, costs, cost_runs, target_cost=target, **common),
        accuracy=evaluate_stream(stream, costs, drop_runs, **common),
        target_cost=target,
        max_accuracy_drop=max_accuracy_drop,
        block_size=block_size,
        full_cost=costs[-1],
    )


def plot_stream_costs(
    evaluation: StreamEvaluation,
    target: float,
    path: str | os.PathLike[str],
    *,
    block_size: int | None = None,
) -> Path:
    """Mean cost per window over the target, for each method, along the stream (PNG).

    Hard blocks are shaded when ``block_size`` is given (the stream starts with an easy one).
    """
    try:
        import matplotlib  # noqa: F401  (a missing matplotlib fails here, not in a submodule)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            'plotting needs matplotlib; install it with: pip install "adanet-torch[plot]"'
        ) from error
    # The Agg canvas directly: plotting never changes the caller's pyplot backend.
    figure = Figure(figsize=(7.0, 4.2), dpi=120)
    canvas: Any = FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    length = 0
    for name, run in evaluation.runs.items():
        starts = [w.start + w.size / 2 for w in run.windows]
        ax.plot(starts, [w.mean_cost / target for w in run.windows], marker="o", label=name)
        length = max(length, int(run.cost.numel()))
    if block_size:
        for start in range(block_size, length, 2 * block_size):
            ax.axvspan(start, min(start + block_size, length), color="0.9", zorder=0)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="target")
    ax.set_xlabel("Stream position (images; shaded: hard blocks)")
    ax.set_ylabel(f"Mean cost per {evaluation.window}-image window / target")
    ax.set_title("Cost per window on a shifting stream")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", ncol=2)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    canvas.print_png(str(out))
    return out


def _ratio_range(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}×" if values else "n/a"


def render_stream_section(comparison: StreamComparison, *, plot: str = "stream.png") -> str:
    """The markdown of the shifted-stream section."""
    target, cost = comparison.target_cost, comparison.cost
    blocks = f"{comparison.block_size:,}"
    lines = [
        "## A shifting stream",
        "",
        f"The test images as a stream of alternating blocks of {blocks} easy and {blocks} hard "
        "ones (split by the first exit's confidence), in batches of "
        f"{cost.batch_size}; every policy calibrated on the validation images only. Target: "
        f"{100 * target / comparison.full_cost:.0f}% of the last exit's MACs per image. "
        f"Windows of {cost.window} images; *settled* leaves out the window after each switch.",
        "",
        "| method | mean cost / target | windows | settled windows | top-1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, run in cost.runs.items():
        windows = [w.mean_cost / target for w in run.windows]
        settled = [w.mean_cost / target for w in run.windows if w.settled]
        lines.append(
            f"| {name} | {run.summary['mean_cost'] / target:.3f} | {_ratio_range(windows)} | "
            f"{_ratio_range(settled)} | {100 * run.summary['accuracy']:.2f}% |"
        )
    eps = comparison.max_accuracy_drop
    lines += [
        "",
        f"![Cost per window]({plot})",
        "",
        f"Holding the disagreement with the last exit at {100 * eps:.0f}% (5% of the images "
        "audited by the controller, no labels):",
        "",
        "| method | mean cost / last exit | disagreement | worst window | worst settled "
        "window | top-1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in comparison.accuracy.runs.items():
        s = run.summary
        lines.append(
            f"| {name} | {s['mean_cost'] / comparison.full_cost:.3f} | "
            f"{100 * s['disagreement']:.2f}% | {100 * s['max_window_disagreement']:.2f}% | "
            f"{100 * s['max_settled_window_disagreement']:.2f}% | {100 * s['accuracy']:.2f}% |"
        )
    return "\n".join([*lines, ""])


def write_stream_section(
    folder: str | os.PathLike[str], *, say: Callable[..., None] = print, **options: Any
) -> str:
    """Computes the comparison for a run folder, writes ``stream.png`` (when matplotlib is
    installed) and ``stream.json``, and appends the section to ``report.md``.

    Args:
        folder: An ``adanet train`` folder with a validation split and a ``report.md``.
        say: Where progress lines go.
        **options: Passed to :func:`compare_on_stream`.

    Returns:
        The section's markdown.
    """
    run = Path(folder)
    started = time.perf_counter()
    comparison = compare_on_stream(run_logits(run), **options)
    try:
        with atomic_path(run / "stream.png") as temporary:
            plot_stream_costs(
                comparison.cost,
                comparison.target_cost,
                temporary,
                block_size=comparison.block_size,
            )
    except ImportError as error:
        say(f"note: no stream plot ({error})")
    write_json_atomic(
        run / "stream.json",
        {"cost": comparison.cost.to_dict(), "accuracy": comparison.accuracy.to_dict()},
    )
    section = render_stream_section(comparison)
    report = run / "report.md"
    before = report.read_text(encoding="utf-8") if report.is_file() else ""
    write_text_atomic(report, before + "\n" + section)
    for name, result in comparison.cost.runs.items():
        summary = result.summary
        say(
            f"shifted stream, {name}: mean cost {summary['mean_cost_ratio']:.3f}x target, "
            f"settled windows {summary['min_settled_window_ratio']:.2f}-"
            f"{summary['max_settled_window_ratio']:.2f}x, top-1 {100 * summary['accuracy']:.2f}%"
        )
    say(f"shifted stream section written to {report} in {time.perf_counter() - started:.0f} s")
    return section
