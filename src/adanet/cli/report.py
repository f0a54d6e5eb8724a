"""A run's ``report.md``: its config, the anytime and budgeted tables with confidence
intervals, wall time per image of real early exit against the all-exit and the last-exit-only
model, and the two plots.

:func:`write_run_report` is called after :func:`adanet.cli.evaluate_run` with the metrics it
returned. It adds 95% Wilson intervals (:func:`adanet.cli.plots.wilson_interval`) to the anytime
and budgeted rows of ``metrics.json``, times the three ways of running the network on the same
test images, redraws ``anytime.png`` and ``budgeted.png`` with the intervals and the static
single-exit baselines, and writes ``report.md``. :func:`render_report` is the pure part: the
markdown for a given metrics dict.

Every accuracy in the report is measured on the test split; the early-exit thresholds were
calibrated on the validation split (the report says which split was used, and warns loudly if a
run had none and calibrated on test).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adanet._atomic import atomic_path, write_json_atomic, write_text_atomic
from adanet._device import module_device
from adanet.cli.plots import plot_anytime, plot_budgeted, wilson_interval
from adanet.inference.engine import early_exit, run_to_exit
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider
from adanet.policies.serialization import policy_from_dict

__all__ = [
    "CI_METHOD",
    "REPORT_NAME",
    "WallTimes",
    "add_confidence_intervals",
    "cheapest_within",
    "measure_wall_times",
    "render_report",
    "write_run_report",
]

REPORT_NAME = "report.md"
CI_METHOD = "Wilson score interval, 95%"
"""How the confidence intervals of every accuracy are computed."""

Batch = Sequence[Tensor]


@dataclass(frozen=True)
class WallTimes:
    """Wall time per image of three ways to classify the same images.

    Attributes:
        early_exit: :func:`adanet.early_exit` under the timed policy.
        all_exits: The plain forward (``model(x)``), which computes every exit's logits.
        last_exit_only: The network up to the last exit with only the last head applied: the
            static model without early exit.
        num_images: How many images were timed.
        batch_size: Largest batch the loader yielded.
        p: The ``p`` of the timed budgeted policy.
    """

    early_exit: float
    all_exits: float
    last_exit_only: float
    num_images: int
    batch_size: int
    p: float


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_wall_times(
    model: EarlyExitNetwork,
    loader: Iterable[Batch],
    policy: ExitDecider,
    *,
    p: float = float("nan"),
    costs: Sequence[float] | None = None,
    max_images: int | None = None,
) -> WallTimes:
    """Times early exit, the all-exit forward and the last-exit-only forward, batch by batch.

    The three are run one after the other on each batch (so a slower or busier moment of the
    machine affects all three alike), after one untimed warm-up batch; data loading is not
    timed. The model is switched to eval mode and restored afterwards.

    Args:
        model: The network.
        loader: Yields ``(images, targets)`` batches.
        policy: The early-exit policy to time.
        p: The budget's ``p``, only recorded.
        costs: Per-exit cumulative costs given to :func:`adanet.early_exit` (measured if
            omitted).
        max_images: Stop after about this many images (whole batches); ``None`` times all.

    Returns:
        Seconds per image of each way.

    Raises:
        ValueError: If the loader yields no images or ``max_images < 1``.
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
    device = module_device(model)
    was_training = model.training
    model.eval()
    seconds = {"early_exit": 0.0, "all_exits": 0.0, "last_exit_only": 0.0}
    runs: dict[str, Callable[[Tensor], object]] = {
        "early_exit": lambda x: early_exit(model, x, policy, costs=costs),
        "all_exits": model,
        "last_exit_only": lambda x: run_to_exit(model, x, -1),
    }
    total = 0
    batch_size = 0
    warmed = False
    try:
        with torch.no_grad():
            for images, _ in loader:
                x = images.to(device)
                if not warmed:
                    for run in runs.values():
                        run(x)
                    warmed = True
                for name, run in runs.items():
                    _synchronize(device)
                    start = time.perf_counter()
                    run(x)
                    _synchronize(device)
                    seconds[name] += time.perf_counter() - start
                total += int(x.shape[0])
                batch_size = max(batch_size, int(x.shape[0]))
                if max_images is not None and total >= max_images:
                    break
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("the loader yielded no images")
    return WallTimes(
        early_exit=seconds["early_exit"] / total,
        all_exits=seconds["all_exits"] / total,
        last_exit_only=seconds["last_exit_only"] / total,
        num_images=total,
        batch_size=batch_size,
        p=p,
    )


def add_confidence_intervals(metrics: dict[str, Any]) -> dict[str, Any]:
    """Adds ``ci95`` ``[low, high]`` to every anytime and budgeted row, in place.

    Intervals are Wilson score intervals over ``metrics["num_test"]`` images; ``ci_method``
    records that.

    Args:
        metrics: The dict :func:`adanet.cli.evaluate_run` returned (or read from
            ``metrics.json``).

    Returns:
        ``metrics`` itself.

    Raises:
        ValueError: If ``num_test`` is missing or not a positive integer.
    """
    n = metrics.get("num_test")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"metrics['num_test'] must be a positive integer, got {n!r}")
    for row in metrics.get("anytime", []):
        row["ci95"] = list(wilson_interval(float(row["top1"]), n))
    for row in metrics.get("budgeted", []):
        row["ci95"] = list(wilson_interval(float(row["accuracy"]), n))
    metrics["ci_method"] = CI_METHOD
    return metrics


def cheapest_within(metrics: Mapping[str, Any], gap: float = 0.01) -> Mapping[str, Any] | None:
    """The cheapest budgeted row whose accuracy is at most ``gap`` below the last exit's.

    Args:
        metrics: Metrics with ``anytime`` and ``budgeted`` rows.
        gap: Allowed accuracy loss, as a fraction (0.01 = one point).

    Returns:
        The row, or ``None`` when no budget comes that close.
    """
    anytime = metrics.get("anytime") or []
    rows = metrics.get("budgeted") or []
    if not anytime or not rows:
        return None
    floor = float(anytime[-1]["top1"]) - gap
    close = [row for row in rows if float(row["accuracy"]) >= floor]
    return min(close, key=lambda row: float(row["mean_macs"])) if close else None


def _percent(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _interval(row: Mapping[str, Any]) -> str:
    if "ci95" not in row:
        return "n/a"
    low, high = row["ci95"]
    return f"{100.0 * low:.2f}–{100.0 * high:.2f}"


def _config_lines(metrics: Mapping[str, Any], config: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Run", "", "| setting | value |", "|---|---|"]
    train = metrics.get("train") or {}
    facts: list[tuple[str, Any]] = [
        ("architecture", metrics.get("arch")),
        ("data", metrics.get("data")),
        ("checkpoint evaluated", metrics.get("checkpoint")),
        ("epochs", train.get("epochs")),
        ("training time (s)", None if "seconds_this_run" not in train else
         f"{float(train['seconds_this_run']):.0f}"),
        ("best validation top-1 (last exit)", None if train.get("best_val_top1") is None else
         _percent(float(train["best_val_top1"]))),
        ("test images", metrics.get("num_test")),
        ("calibration images", metrics.get("num_calibration")),
        ("cost convention", metrics.get("cost_convention")),
    ]  # fmt: skip
    if config is not None:
        facts.append(("model config", f"`{json.dumps(config, sort_keys=True)}`"))
    for name, value in facts:
        if value is not None:
            lines.append(f"| {name} | {value} |")
    return [*lines, ""]


def render_report(
    metrics: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    wall_times: WallTimes | None = None,
    title: str = "adanet run report",
    prefix: str = "",
) -> str:
    """The markdown of ``report.md`` for a run's metrics.

    Args:
        metrics: The run's metrics (``anytime`` rows with ``macs``/``top1``/``top5``, optional
            ``budgeted`` rows, ``num_test``, ``calibration_split``, ...), with ``ci95``
            intervals when :func:`add_confidence_intervals` has been applied.
        config: The model config, shown in the run table.
        wall_times: Timings from :func:`measure_wall_times`, shown in their own table.
        title: The top heading.
        prefix: Prefix of the plot files the report embeds.

    Returns:
        The report text.

    Raises:
        ValueError: If ``metrics`` has no anytime rows.
    """
    anytime = list(metrics.get("anytime") or [])
    if not anytime:
        raise ValueError("metrics has no 'anytime' rows to report")
    full = float(anytime[-1]["macs"])
    lines = [f"# {title}", ""]
    split = metrics.get("calibration_split")
    if split == "validation":
        lines += [
            f"Early-exit thresholds were calibrated on the **validation** split "
            f"({metrics.get('num_calibration')} images), never on the test split; every "
            f"accuracy below is measured on the test split ({metrics.get('num_test')} images), "
            "and every budgeted point was run for real with early exit (`adanet.early_exit`).",
            "",
        ]
    elif split is not None:
        lines += [
            f"> **Warning:** this run had no validation split, so the thresholds were "
            f"calibrated on the **{split}** split they are scored on: the budgeted accuracies "
            "are optimistic. Train with `--use-valid`.",
            "",
        ]
    lines += _config_lines(metrics, config)
    ci_note = (
        f"Intervals: {metrics.get('ci_method', CI_METHOD)}, over the test images of each point "
        "(all points share the same test images, so their errors are correlated)."
    )
    lines += [
        "## Anytime prediction",
        "",
        "Every test image classified at exit k.",
        "",
        "| exit | MMACs | % of last exit | top-1 | 95% CI (%) | top-5 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in anytime:
        macs = float(row["macs"])
        lines.append(
            f"| {row['exit']} | {macs / 1e6:.3f} | {100 * macs / full:.1f}% | "
            f"{_percent(float(row['top1']))} | {_interval(row)} | "
            f"{_percent(float(row.get('top5', float('nan'))))} |"
        )
    lines += ["", ci_note, "", f"![Anytime prediction]({prefix}anytime.png)", ""]
    budgeted = list(metrics.get("budgeted") or [])
    if budgeted:
        lines += [
            "## Budgeted batch classification",
            "",
            "Thresholds calibrated so that a geometric share (ratio p) of the calibration "
            "images leaves at each exit, then run for real on the test split.",
            "",
            "| p | MMACs | % of last exit | top-1 | 95% CI (%) | ms / image | exit shares |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in sorted(budgeted, key=lambda r: float(r["mean_macs"])):
            macs = float(row["mean_macs"])
            shares = " ".join(f"{f:.2f}" for f in row.get("exit_fractions", []))
            lines.append(
                f"| {float(row['p']):.2f} | {macs / 1e6:.3f} | {100 * macs / full:.1f}% | "
                f"{_percent(float(row['accuracy']))} | {_interval(row)} | "
                f"{1e3 * float(row.get('seconds_per_image', float('nan'))):.3f} | {shares} |"
            )
        best = cheapest_within(metrics)
        lines.append("")
        if best is not None:
            lines.append(
                f"Cheapest budget within 1 point of the last exit: p = {float(best['p']):.2f}, "
                f"top-1 {_percent(float(best['accuracy']))} at "
                f"{100 * float(best['mean_macs']) / full:.1f}% of the last exit's MACs."
            )
        else:
            lines.append("No budget came within 1 point of the last exit.")
        lines += ["", ci_note, "", f"![Budgeted batch classification]({prefix}budgeted.png)", ""]
    if wall_times is not None:
        base = wall_times.last_exit_only
        lines += [
            "## Wall time per image",
            "",
            f"The same {wall_times.num_images} test images in batches of up to "
            f"{wall_times.batch_size}, the three runs interleaved batch by batch on "
            f"{metrics.get('device', 'the evaluation device')}; data loading excluded.",
            "",
            "| model | ms / image | relative to last exit only |",
            "|---|---:|---:|",
        ]
        for name, value in (
            (f"real early exit (p = {wall_times.p:.2f})", wall_times.early_exit),
            ("all exits (`model(x)`)", wall_times.all_exits),
            ("last exit only (static)", wall_times.last_exit_only),
        ):
            ratio = value / base if base > 0 else float("nan")
            lines.append(f"| {name} | {1e3 * value:.3f} | {ratio:.2f}× |")
        lines.append("")
    return "\n".join(lines)


def write_run_report(
    model: EarlyExitNetwork,
    test_loader: Iterable[Batch],
    save: str | os.PathLike[str],
    metrics: dict[str, Any],
    *,
    point_series: Mapping[str, Sequence[Any]] | None = None,
    max_timed_images: int | None = 2048,
    prefix: str = "",
    say: Callable[..., None] = print,
) -> Path:
    """Completes a run folder: intervals in ``metrics.json``, plots with intervals, ``report.md``.

    The policy timed is the cheapest budget within one point of the last exit (else the most
    accurate one), rebuilt from ``policies.json`` in ``save``. Without budgeted rows only the
    anytime part is written.

    Args:
        model: The evaluated network.
        test_loader: The test batches the metrics were measured on.
        save: The run folder holding ``metrics.json`` and ``policies.json``.
        metrics: The metrics :func:`adanet.cli.evaluate_run` returned; updated in place.
        point_series: Extra labelled points for the budgeted plot (e.g. risk-controlled
            policies): records with ``mean_macs`` and ``accuracy``.
        max_timed_images: Images timed per way (``None``: the whole test set).
        prefix: Prefix of every file read and written (``"eval_"`` for ``adanet eval``,
            which must not replace the training run's files).
        say: Where progress lines go.

    Returns:
        The path of ``report.md``.
    """
    folder = Path(save)
    add_confidence_intervals(metrics)
    n = int(metrics["num_test"])
    wall: WallTimes | None = None
    budgeted = metrics.get("budgeted") or []
    policies_path = folder / f"{prefix}policies.json"
    if budgeted and policies_path.is_file():
        chosen = cheapest_within(metrics) or max(budgeted, key=lambda r: float(r["accuracy"]))
        stored = json.loads(policies_path.read_text(encoding="utf-8"))
        by_p = {float(entry["p"]): entry["policy"] for entry in stored["policies"]}
        policy = policy_from_dict(by_p[float(chosen["p"])])
        wall = measure_wall_times(
            model,
            test_loader,
            policy,
            p=float(chosen["p"]),
            costs=stored.get("costs"),
            max_images=max_timed_images,
        )
        metrics["wall_time"] = asdict(wall)
    metrics.setdefault("device", str(module_device(model)))
    try:
        with atomic_path(folder / f"{prefix}anytime.png") as temporary:
            plot_anytime(metrics["anytime"], temporary, num_samples=n)
        if budgeted:
            with atomic_path(folder / f"{prefix}budgeted.png") as temporary:
                plot_budgeted(
                    budgeted,
                    temporary,
                    num_samples=n,
                    static_exits=metrics["anytime"],
                    point_series=point_series,
                )
    except ImportError as error:
        say(f"note: no plots ({error})")
    write_json_atomic(folder / f"{prefix}metrics.json", metrics)
    config_path = folder / "config.json"
    config = None
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8")).get("config")
    report = folder / f"{prefix}{REPORT_NAME}"
    write_text_atomic(report, render_report(metrics, config=config, wall_times=wall, prefix=prefix))
    if wall is not None:
        say(
            f"wall time per image over {wall.num_images} test images: early exit "
            f"(p={wall.p:.2f}) {1e3 * wall.early_exit:.3f} ms, all exits "
            f"{1e3 * wall.all_exits:.3f} ms, last exit only {1e3 * wall.last_exit_only:.3f} ms"
        )
    say(f"wrote {report}")
    return report
