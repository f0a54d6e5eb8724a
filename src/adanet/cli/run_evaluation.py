"""A trained model's anytime and budgeted evaluation, in three steps: compute, report, write.

:func:`compute_run_evaluation` runs the model (anytime over the test split; thresholds
calibrated on validation, or on test without one, as the original; every calibrated policy
run for real with early exit); :func:`report_run_evaluation` prints the tables;
:func:`write_run_evaluation` writes the metrics, policies and plots atomically.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..budgeted import BudgetRecord, budgeted_sweep
from ..costs import Convention, measure_exit_costs
from ..data import DataLoaders
from ..evaluation import AnytimeEvaluation, evaluate_anytime, evaluate_policy
from ..protocol import EarlyExitNetwork
from ..run_folder import atomic_path, write_json_atomic

__all__ = [
    "RunEvaluation",
    "compute_run_evaluation",
    "evaluate_run",
    "report_run_evaluation",
    "write_run_evaluation",
]


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
    """

    convention: str
    costs: list[float]
    test: AnytimeEvaluation
    info: Mapping[str, Any]
    calibration: str | None = None
    num_calibration: int = 0
    sweep: Sequence[BudgetRecord[Any]] = ()
    budgeted: Sequence[Mapping[str, Any]] = field(default_factory=list)

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
        return metrics

    def policies(self) -> dict[str, Any]:
        """The ``policies.json`` content: every calibrated policy."""
        return {
            "cost_convention": self.convention,
            "calibration_split": self.calibration,
            "costs": self.costs,
            "policies": [
                {"p": r.p, "policy": r.policy.to_dict(), "test_accuracy": r.accuracy}
                for r in self.sweep
            ],
        }


def compute_run_evaluation(
    model: EarlyExitNetwork,
    loaders: DataLoaders,
    image_shape: Sequence[int],
    *,
    evalmode: str = "both",
    convention: Convention = "actual",
    info: Mapping[str, Any] | None = None,
) -> RunEvaluation:
    """Evaluate ``model`` anytime and (unless ``evalmode="anytime"``) budgeted."""
    model.eval()
    costs = [c.macs for c in measure_exit_costs(model, tuple(image_shape), convention)]
    test = evaluate_anytime(model, loaders.test, costs=costs)
    facts = dict(info) if info else {}
    if evalmode not in ("dynamic", "both"):
        return RunEvaluation(convention, costs, test, facts)
    val: AnytimeEvaluation = test
    calibration = "test"
    if loaders.val is not None:
        val, calibration = evaluate_anytime(model, loaders.val, costs=costs), "validation"
    with warnings.catch_warnings():
        # The report says so, once and in plain words.
        warnings.simplefilter("ignore", UserWarning)
        sweep = budgeted_sweep(val.logits, val.targets, test.logits, test.targets, costs)
    rows: list[dict[str, Any]] = []
    for record in sweep:
        real = evaluate_policy(model, loaders.test, record.policy, costs=costs)
        rows.append(
            {
                "p": record.p,
                "mean_macs": real.mean_cost,
                "accuracy": real.accuracy,
                "seconds_per_image": real.seconds_per_image,
                "exit_fractions": list(real.exit_fractions),
                "simulated_accuracy": record.accuracy,
                "simulated_mean_macs": record.mean_cost,
            }
        )
    return RunEvaluation(
        convention, costs, test, facts, calibration, int(val.targets.shape[0]), sweep, rows
    )


def _format_fractions(fractions: Sequence[float]) -> str:
    return " ".join(f"{f:.2f}" for f in fractions)


def report_run_evaluation(evaluation: RunEvaluation, say: Callable[..., None] = print) -> None:
    """Print the anytime table and, when computed, the budgeted one."""
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
    """Write ``<prefix>metrics.json``, ``<prefix>policies.json`` (budgeted only) and the
    plots ``<prefix>anytime.png``/``<prefix>budgeted.png`` (when matplotlib is installed)
    into ``folder``, each atomically.

    Returns:
        The files written.
    """
    written: list[Path] = []
    if evaluation.calibration is not None:
        write_json_atomic(folder / f"{prefix}policies.json", evaluation.policies())
        written.append(folder / f"{prefix}policies.json")
    written += _write_plots(evaluation, folder, prefix, say)
    write_json_atomic(folder / f"{prefix}metrics.json", evaluation.metrics())
    written.append(folder / f"{prefix}metrics.json")
    say(f"\nwrote {folder / f'{prefix}metrics.json'}")
    return written


def _write_plots(
    evaluation: RunEvaluation, folder: Path, prefix: str, say: Callable[..., None]
) -> list[Path]:
    from ..plots import plot_anytime, plot_budgeted

    written: list[Path] = []
    try:
        with atomic_path(folder / f"{prefix}anytime.png") as temporary:
            plot_anytime(evaluation.test.records, temporary)
        written.append(folder / f"{prefix}anytime.png")
        if evaluation.calibration is not None:
            with atomic_path(folder / f"{prefix}budgeted.png") as temporary:
                plot_budgeted(
                    evaluation.budgeted, temporary, {"anytime exits": evaluation.test.records}
                )
            written.append(folder / f"{prefix}budgeted.png")
    except ImportError as error:
        say(f"note: no plots ({error})")
    return written


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
) -> dict[str, Any]:
    """Compute, report and write a model's evaluation; returns the metrics.

    The budgeted thresholds are calibrated on the validation split when there is one (else,
    as the original without ``--use-valid``, on the test split, with a warning); every
    calibrated policy is then run for real with early exit over the test loader.
    """
    evaluation = compute_run_evaluation(
        model, loaders, image_shape, evalmode=evalmode, convention=convention, info=info
    )
    report_run_evaluation(evaluation, say)
    write_run_evaluation(evaluation, Path(save), prefix=prefix, say=say)
    return evaluation.metrics()
