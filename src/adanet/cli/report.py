"""A run's ``report.md``: its config, the anytime and budgeted tables with confidence
intervals, the wall time of every budget point's real early exit against the static last exit
(eager, optimized, ONNX Runtime), and the three plots.

:func:`write_run_report` is called after :func:`adanet.cli.evaluate_run` with the metrics it
returned. It adds 95% Wilson intervals (:func:`adanet.cli.plots.wilson_interval`) to the anytime
and budgeted rows of ``metrics.json``, times every budget point on a stream of test batches
(:mod:`adanet.cli.wall_times`), redraws ``anytime.png`` and ``budgeted.png`` with the
intervals and the static single-exit baselines, draws ``wall_time.png`` (time ratio against
MACs ratio), and writes ``report.md``. The markdown itself comes from
:func:`adanet.cli.report_text.render_report`.

Every accuracy in the report is measured on the test split; the early-exit thresholds were
calibrated on the validation split (the report says which split was used, and warns loudly if a
run had none and calibrated on test).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor

from adanet._atomic import atomic_path, write_json_atomic, write_text_atomic
from adanet._device import module_device
from adanet.cli.background_export import BackgroundExport
from adanet.cli.plots import plot_anytime, plot_budgeted, plot_time_against_macs
from adanet.cli.report_text import add_confidence_intervals, cheapest_within, render_report
from adanet.cli.wall_times import WallTimes, measure_wall_times, static_run_macs
from adanet.costs.counting import Convention
from adanet.deploy.optimize import optimize_for_inference
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.serialization import policy_from_dict

__all__ = ["REPORT_NAME", "times_onnx_runtime", "timing_networks", "write_run_report"]

REPORT_NAME = "report.md"

Batch = Sequence[Tensor]


def timing_networks(
    model: EarlyExitNetwork,
    image_shape: Sequence[int],
    *,
    onnx: bool | None = None,
    say: Callable[..., None] = print,
    exported: BackgroundExport | None = None,
) -> dict[str, EarlyExitNetwork]:
    """The ways of running ``model`` the report times: as it is (``"eager"``), its
    :func:`adanet.optimize_for_inference` copy (``"optimized"``) and, with ``onnx`` (``None``:
    where the ``onnx`` extra is installed and the model is on the CPU), its stages exported
    with :func:`adanet.export_onnx` and run by ONNX Runtime (``"ONNX Runtime"``).

    An export that fails leaves ONNX Runtime out, with a note through ``say``. With
    ``exported`` (an export already running in another process) its stages are used; should
    it have failed, the stages are exported here.
    """
    networks: dict[str, EarlyExitNetwork] = {"eager": model}
    networks["optimized"] = optimize_for_inference(model)
    if not times_onnx_runtime(model, onnx):
        return networks
    from adanet.deploy.onnx import OnnxRuntimeNetwork, export_onnx

    if exported is not None:
        try:
            networks["ONNX Runtime"] = OnnxRuntimeNetwork(exported.result())
            return networks
        except (ImportError, RuntimeError, ValueError, TypeError) as error:
            say(f"note: exporting again in this process ({str(error)[:200]})")
    with tempfile.TemporaryDirectory(prefix="adanet-report-onnx-") as folder:
        try:
            export_onnx(model.eval(), Path(folder) / "stages", tuple(image_shape))
            # The sessions hold the graphs: the files can go once they are loaded.
            networks["ONNX Runtime"] = OnnxRuntimeNetwork(Path(folder) / "stages")
        except (ImportError, RuntimeError, ValueError, TypeError) as error:
            say(f"note: no ONNX Runtime timing ({type(error).__name__}: {str(error)[:200]})")
    return networks


def times_onnx_runtime(model: EarlyExitNetwork, onnx: bool | None = None) -> bool:
    """Whether the report times ``model``'s ONNX Runtime stages: ``onnx`` if given, else
    where the model is on the CPU and ONNX Runtime and ``onnxscript`` can be imported."""
    if onnx is not None:
        return onnx
    import importlib.util

    return module_device(model).type == "cpu" and all(
        importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnxscript")
    )


def _time_budget_points(
    model: EarlyExitNetwork,
    test_loader: Iterable[Batch],
    metrics: Mapping[str, Any],
    stored: Mapping[str, Any],
    options: Mapping[str, Any],
) -> WallTimes:
    """Every budget point of ``policies.json`` timed on each way of running the model."""
    budgeted = metrics.get("budgeted") or []
    chosen = cheapest_within(metrics) or max(budgeted, key=lambda r: float(r["accuracy"]))
    policies = {
        float(entry["p"]): policy_from_dict(entry["policy"]) for entry in stored["policies"]
    }
    costs = stored.get("costs") or [float(row["macs"]) for row in metrics["anytime"]]
    first = next(iter(test_loader))
    image_shape = tuple(int(v) for v in first[0].shape[1:])
    networks = timing_networks(
        model, image_shape, onnx=options["onnx"], say=options["say"], exported=options["exported"]
    )
    recorded = stored.get("cost_convention") or metrics.get("cost_convention")
    convention: Convention = "reference" if recorded == "reference" else "actual"
    # The eager and optimized static runs skip the earlier heads; ONNX Runtime's stages each
    # hold their head, so its static run costs the last exit's cumulative MACs.
    static = static_run_macs(model, image_shape, convention)
    return measure_wall_times(
        networks,
        test_loader,
        policies,
        costs=costs,
        p=float(chosen["p"]),
        max_images=options["max_images"],
        static_macs={"eager": static, "optimized": static},
    )


def write_run_report(
    model: EarlyExitNetwork,
    test_loader: Iterable[Batch],
    save: str | os.PathLike[str],
    metrics: dict[str, Any],
    *,
    point_series: Mapping[str, Sequence[Any]] | None = None,
    max_timed_images: int | None = 768,
    onnx: bool | None = None,
    prefix: str = "",
    say: Callable[..., None] = print,
    exported: BackgroundExport | None = None,
) -> Path:
    """Completes a run folder: intervals in ``metrics.json``, plots with intervals, ``report.md``.

    Every budget point of ``policies.json`` (in ``save``) is timed against the static last
    exit on a stream of test batches (:func:`adanet.cli.wall_times.measure_wall_times`), for
    the eager model, its optimized copy and (``onnx``) its ONNX Runtime stages; the report's
    budget point is the cheapest within one point of the last exit (else the most accurate
    one). The section and ``wall_time.png`` show the trade-off in time. Without budgeted rows
    only the anytime part is written.

    Args:
        model: The evaluated network.
        test_loader: The test batches the metrics were measured on.
        save: The run folder holding ``metrics.json`` and ``policies.json``.
        metrics: The metrics :func:`adanet.cli.evaluate_run` returned; updated in place.
        point_series: Extra labelled points for the budgeted plot (e.g. risk-controlled
            policies): records with ``mean_macs`` and ``accuracy``.
        max_timed_images: Images timed per way of running the model (``None``: the whole test
            set; 0: no wall-time section).
        onnx: Time the ONNX Runtime stages too; ``None``: where the ``onnx`` extra is
            installed and the model is on the CPU (exporting takes a while: ~20 s for the
            demo's model on 2 cores).
        prefix: Prefix of every file read and written (``"eval_"`` for ``adanet eval``,
            which must not replace the training run's files).
        say: Where progress lines go.
        exported: The ONNX export of ``model`` already running in another process
            (:func:`adanet.cli.evaluate_run` starts one), used instead of exporting here.

    Returns:
        The path of ``report.md``.
    """
    folder = Path(save)
    add_confidence_intervals(metrics)
    n = int(metrics["num_test"])
    wall: WallTimes | None = None
    budgeted = metrics.get("budgeted") or []
    policies_path = folder / f"{prefix}policies.json"
    if budgeted and policies_path.is_file() and max_timed_images != 0:
        stored = json.loads(policies_path.read_text(encoding="utf-8"))
        options = {
            "onnx": onnx,
            "say": say,
            "max_images": max_timed_images or 10**9,
            "exported": exported,
        }
        wall = _time_budget_points(model, test_loader, metrics, stored, options)
        metrics["wall_time"] = {**asdict(wall), "recommended": wall.recommended.name}
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
        if wall is not None:
            with atomic_path(folder / f"{prefix}wall_time.png") as temporary:
                plot_time_against_macs(
                    {
                        path.name: [(pt.static_macs_ratio, pt.time_ratio) for pt in path.points]
                        for path in wall.paths
                    },
                    temporary,
                    note=f"batch {wall.batch_size}, {wall.threads} threads, {wall.isa}",
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
        for path in wall.paths:
            point = path.at(wall.p)
            say(
                f"wall time per image over {wall.num_images} test images, {path.name}: early "
                f"exit (p={wall.p:.2f}) {point.ms_per_image:.3f} ms = {point.time_ratio:.2f}x "
                f"the static last exit ({path.last_exit_ms:.3f} ms), at {point.macs_ratio:.2f}x "
                f"the last exit's cumulative MACs ({point.static_macs_ratio:.2f}x the static run's)"
            )
    say(f"wrote {report}")
    return report
