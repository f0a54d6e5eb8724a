"""A trained model's anytime and budgeted evaluation, in three steps: compute, report, write.

:func:`compute_run_evaluation` runs the model (anytime over the test split; thresholds
calibrated on validation, or on test without one, as the original; every calibrated policy
run for real with early exit, one of them also timed against the all-exit and last-exit-only
forwards; optionally a guaranteed policy and a user's policy, see
:mod:`adanet.cli.policy_runs`); :func:`report_run_evaluation` prints the tables;
:func:`write_run_evaluation` writes the metrics, policies and plots atomically.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adanet._atomic import write_json_atomic
from adanet.calibration.budgeted import DEFAULT_PS, BudgetRecord, budgeted_sweep
from adanet.cli.background_export import BackgroundExport
from adanet.cli.policy_runs import PolicyOptions, report_policy_rows, risk_row, run_row
from adanet.cli.report import times_onnx_runtime, write_run_report
from adanet.costs.counting import Convention, measure_exit_costs
from adanet.data import DataLoaders
from adanet.measure.evaluation import AnytimeEvaluation, evaluate_anytime
from adanet.models.early_exit_network import EarlyExitNetwork

__all__ = [
    "TIMED_P",
    "RunEvaluation",
    "compute_run_evaluation",
    "evaluate_run",
    "report_run_evaluation",
    "write_run_evaluation",
]

TIMED_P = 1.0
"""The budget (``p``, nearest in the sweep) whose policy is also timed against the all-exit
and last-exit-only forwards; the one ``adanet export`` keeps by default."""


@dataclass(frozen=True)
class RunEvaluation:
    """What :func:`compute_run_evaluation` found.

    Attributes:
        convention: The cost convention of the MACs.
        costs: Cumulative MACs per image of each exit.
        test: Anytime evaluation of the test split.
        info: Run facts to record with the metrics (architecture, data, checkpoint, ...).
        calibration: ``"validation"`` or ``"test"`` (the split thresholds were calibrated
            on), or ``None`` for an anytime-only evaluation.
        num_calibration: Images in the calibration split (0 without budgeted evaluation).
        sweep: The simulated budgeted sweep (policies and their simulated results).
        budgeted: One row per budget of the policy run for real with early exit.
        latency: Throughput and batch latencies (``"policy"``, ``"all_exits"``,
            ``"last_exit"``) of one policy, and ``"what"`` it is; ``None`` when none ran.
        risk: The guaranteed policy's row (``--max-accuracy-drop``), or ``None``.
        policy: The user's policy's row (``--policy``), or ``None``.
    """

    convention: str
    costs: list[float]
    test: AnytimeEvaluation
    info: Mapping[str, Any]
    calibration: str | None = None
    num_calibration: int = 0
    sweep: Sequence[BudgetRecord[Any]] = ()
    budgeted: Sequence[Mapping[str, Any]] = field(default_factory=list)
    latency: Mapping[str, Any] | None = None
    risk: Mapping[str, Any] | None = None
    policy: Mapping[str, Any] | None = None

    @property
    def mismatches(self) -> int:
        """Budgets whose real early-exit accuracy differs from the simulated one."""
        return sum(
            abs(row["accuracy"] - row["simulated_accuracy"]) > 1e-12 for row in self.budgeted
        )

    def metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` content."""
        metrics: dict[str, Any] = {
            "cost_convention": self.convention,
            **dict(self.info),
            "num_test": int(self.test.targets.shape[0]),
            "full_macs": self.costs[-1],
            "anytime": [
                {"exit": r.exit, "macs": r.macs, "top1": r.top1, "top5": r.top5}
                for r in self.test.records
            ],
        }
        if self.calibration is not None:
            metrics["calibration_split"] = self.calibration
            metrics["num_calibration"] = self.num_calibration
            metrics["budgeted"] = [dict(row) for row in self.budgeted]
            metrics["real_vs_simulated_mismatches"] = self.mismatches
        for key, value in (
            ("latency", self.latency),
            ("risk_policy", self.risk),
            ("policy", self.policy),
        ):
            if value is not None:
                metrics[key] = dict(value)
        return metrics

    def policies(self) -> dict[str, Any]:
        """The ``policies.json`` content: every calibrated policy (the guaranteed one, when
        calibrated, under ``"risk_policy"``)."""
        content: dict[str, Any] = {
            "cost_convention": self.convention,
            "calibration_split": self.calibration,
            "costs": self.costs,
            "policies": [
                {"p": r.p, "policy": r.policy.to_dict(), "test_accuracy": r.accuracy}
                for r in self.sweep
            ],
        }
        if self.risk is not None:
            content["risk_policy"] = {
                key: self.risk[key]
                for key in ("method", "max_accuracy_drop", "delta", "policy", "accuracy")
            }
        return content


def compute_run_evaluation(
    model: EarlyExitNetwork,
    loaders: DataLoaders,
    image_shape: Sequence[int],
    *,
    evalmode: str = "both",
    convention: Convention = "actual",
    info: Mapping[str, Any] | None = None,
    options: PolicyOptions | None = None,
) -> RunEvaluation:
    """Evaluate ``model`` anytime and (unless ``evalmode="anytime"``) budgeted, and run the
    policies ``options`` asks for.

    Raises:
        CLIError: ``options`` calibrate on validation and ``loaders`` have no validation split.
    """
    options = options or PolicyOptions()
    options.check_calibration_split(loaders.val is not None)
    model.eval()
    costs = [c.macs for c in measure_exit_costs(model, tuple(image_shape), convention)]
    test = evaluate_anytime(model, loaders.test, costs=costs)
    facts = dict(info) if info else {}
    context = {"cost_convention": convention, "input_size": tuple(image_shape)}
    custom: dict[str, Any] | None = None
    if options.policy is not None:
        custom = {
            "spec": options.policy_spec,
            **run_row(model, loaders.test, options.policy, costs, baselines=True),
        }
    budgeted = evalmode in ("dynamic", "both")
    if not budgeted and not options.needs_validation:
        latency = None if custom is None else {"what": "--policy", **custom["latency"]}
        return RunEvaluation(convention, costs, test, facts, latency=latency, policy=custom)
    val, calibration = test, "test"
    if loaders.val is not None:
        val, calibration = evaluate_anytime(model, loaders.val, costs=costs), "validation"
    risk = None
    if options.max_accuracy_drop is not None:
        risk = risk_row(model, loaders.test, val, test, costs, options, context)
    if not budgeted:
        latency = None if custom is None else {"what": "--policy", **custom["latency"]}
        return RunEvaluation(convention, costs, test, facts, None, 0, (), [], latency, risk, custom)
    ps = DEFAULT_PS[:: options.budget_stride]
    sweep, rows, latency = _budgeted(model, loaders, val, test, costs, context, ps)
    return RunEvaluation(
        convention,
        costs,
        test,
        facts,
        calibration,
        int(val.targets.shape[0]),
        sweep,
        rows,
        latency,
        risk,
        custom,
    )


def _budgeted(
    model: EarlyExitNetwork,
    loaders: DataLoaders,
    val: AnytimeEvaluation,
    test: AnytimeEvaluation,
    costs: Sequence[float],
    context: Mapping[str, Any],
    ps: Sequence[float],
) -> tuple[list[BudgetRecord[Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """The budgeted sweep, each policy run for real; only the one nearest :data:`TIMED_P` is
    also timed against the all-exit and last-exit-only forwards (timing them ~39 times over
    would only repeat the same numbers)."""
    with warnings.catch_warnings():
        # The report says so, once and in plain words.
        warnings.simplefilter("ignore", UserWarning)
        sweep = budgeted_sweep(
            val.logits,
            val.targets,
            test.logits,
            test.targets,
            costs,
            ps=ps,
            cost_convention=context["cost_convention"],
            input_size=context["input_size"],
        )
    timed = min(range(len(sweep)), key=lambda i: abs(sweep[i].p - TIMED_P)) if sweep else -1
    rows: list[dict[str, Any]] = []
    latency: dict[str, Any] | None = None
    for index, record in enumerate(sweep):
        real = run_row(model, loaders.test, record.policy, costs, baselines=index == timed)
        if index == timed:
            latency = {"what": f"budgeted policy p={record.p:g}", "p": record.p, **real["latency"]}
        rows.append(
            {
                "p": record.p,
                "mean_macs": real["mean_macs"],
                "accuracy": real["accuracy"],
                "seconds_per_image": real["seconds_per_image"],
                "exit_fractions": real["exit_fractions"],
                "simulated_accuracy": record.accuracy,
                "simulated_mean_macs": record.mean_cost,
            }
        )
    return sweep, rows, latency


def _format_fractions(fractions: Sequence[float]) -> str:
    return " ".join(f"{f:.2f}" for f in fractions)


def report_run_evaluation(evaluation: RunEvaluation, say: Callable[..., None] = print) -> None:
    """Print the anytime table and, when computed, the budgeted one, the guaranteed and the
    user's policy, and the latencies."""
    _report_tables(evaluation, say)
    rows = {
        key: value
        for key, value in (
            ("risk", evaluation.risk),
            ("policy", evaluation.policy),
            ("latency", evaluation.latency),
        )
        if value is not None
    }
    report_policy_rows(rows, evaluation.costs[-1], say)


def _report_tables(evaluation: RunEvaluation, say: Callable[..., None]) -> None:
    full = evaluation.costs[-1]
    say(
        "\nAnytime prediction on the test split (MACs per image, "
        f"'{evaluation.convention}' convention):"
    )
    say(f"{'exit':>4}  {'MMACs':>9}  {'% full':>6}  {'top-1':>7}  {'top-5':>7}")
    for r in evaluation.test.records:
        say(
            f"{r.exit:>4}  {r.macs / 1e6:>9.3f}  {100 * r.macs / full:>5.1f}%  "
            f"{100 * r.top1:>6.2f}%  {100 * r.top5:>6.2f}%"
        )
    if evaluation.calibration is None:
        return
    if evaluation.calibration == "test":
        say(
            "warning: no validation split (run with --use-valid to hold one out): the "
            "early-exit thresholds are tuned on the test data, as the original did, so the "
            "budgeted accuracy is optimistic",
            error=True,
        )
    say(
        "\nBudgeted batch classification: thresholds calibrated on the "
        f"{evaluation.calibration} split ({evaluation.num_calibration} images), run for real "
        f"with early exit on the test split ({int(evaluation.test.targets.shape[0])} images):"
    )
    say(f"{'p':>5}  {'MMACs':>9}  {'% full':>6}  {'top-1':>7}  {'ms/img':>7}  exit fractions")
    for row in evaluation.budgeted:
        say(
            f"{row['p']:>5.2f}  {row['mean_macs'] / 1e6:>9.3f}  "
            f"{100 * row['mean_macs'] / full:>5.1f}%  {100 * row['accuracy']:>6.2f}%  "
            f"{1e3 * row['seconds_per_image']:>7.3f}  "
            f"{_format_fractions(row['exit_fractions'])}"
        )
    if evaluation.mismatches:
        say(
            f"warning: for {evaluation.mismatches} budgets the real early-exit accuracy "
            "differs from the simulated one (confidences within rounding of a threshold)",
            error=True,
        )
    else:
        say("real early exit reproduced the simulated accuracy at every budget")


def write_run_evaluation(
    evaluation: RunEvaluation,
    folder: Path,
    *,
    prefix: str = "",
    say: Callable[..., None] = print,
) -> list[Path]:
    """Write ``<prefix>metrics.json`` and ``<prefix>policies.json`` (calibrated policies only)
    into ``folder``, each atomically; :func:`adanet.cli.report.write_run_report` then adds the
    plots and ``report.md``.

    Returns:
        The files written.
    """
    written: list[Path] = []
    if evaluation.calibration is not None or evaluation.risk is not None:
        write_json_atomic(folder / f"{prefix}policies.json", evaluation.policies())
        written.append(folder / f"{prefix}policies.json")
    write_json_atomic(folder / f"{prefix}metrics.json", evaluation.metrics())
    written.append(folder / f"{prefix}metrics.json")
    say(f"\nwrote {folder / f'{prefix}metrics.json'}")
    return written


def _risk_points(metrics: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """The guaranteed policy as a labelled point of the budgeted plot, when there is one."""
    risk = metrics.get("risk_policy")
    if not isinstance(risk, Mapping) or "mean_macs" not in risk:
        return None
    label = f"risk-controlled ({risk.get('method', '?')}, eps={risk.get('max_accuracy_drop', '?')})"
    return {label: [dict(risk)]}


def evaluate_run(
    model: EarlyExitNetwork,
    loaders: DataLoaders,
    image_shape: Sequence[int],
    save: Path,
    *,
    evalmode: str = "both",
    convention: Convention = "actual",
    info: Mapping[str, Any] | None = None,
    say: Callable[..., None] = print,
    prefix: str = "",
    options: PolicyOptions | None = None,
) -> dict[str, Any]:
    """Compute, report and write a model's evaluation; returns the metrics.

    The budgeted thresholds are calibrated on the validation split when there is one (else,
    as the original without ``--use-valid``, on the test split, with a warning); every
    calibrated policy is then run for real with early exit over the test loader, and so are
    the policies ``options`` asks for.
    """
    # The report times ONNX Runtime too; its export runs beside the evaluation.
    exported = _start_export(model, image_shape) if evalmode != "anytime" else None
    try:
        evaluation = compute_run_evaluation(
            model,
            loaders,
            image_shape,
            evalmode=evalmode,
            convention=convention,
            info=info,
            options=options,
        )
        report_run_evaluation(evaluation, say)
        write_run_evaluation(evaluation, Path(save), prefix=prefix, say=say)
        metrics = evaluation.metrics()
        write_run_report(
            model,
            loaders.test,
            save,
            metrics,
            point_series=_risk_points(metrics),
            prefix=prefix,
            say=say,
            exported=exported,
        )
    finally:
        if exported is not None:
            exported.close()
    return metrics


def _start_export(model: EarlyExitNetwork, image_shape: Sequence[int]) -> BackgroundExport | None:
    """The report's ONNX export started in another process, where the report will time
    ONNX Runtime (:func:`adanet.cli.report.times_onnx_runtime`) and the network can be
    rebuilt there; else ``None`` (the report exports, or skips ONNX Runtime, itself)."""
    if not times_onnx_runtime(model):
        return None
    try:
        return BackgroundExport(model, image_shape)
    except (TypeError, ValueError, OSError):
        return None
