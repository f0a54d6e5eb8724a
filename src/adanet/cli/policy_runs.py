"""The early-exit policies the commands run beyond the budgeted sweep, each for real.

* A guaranteed policy: :func:`adanet.calibrate_risk` on the validation logits for
  ``--max-accuracy-drop`` (optionally with per-exit temperatures fitted on validation,
  ``--temperatures``), reported with its test accuracy drop against the last exit.
* A user's policy (``adanet eval --policy SPEC``, see :mod:`adanet.cli.policy_spec`).

Each is run with :func:`adanet.evaluate_policy` over the test loader; the rows written to the
metrics are plain JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adanet.calibration.risk import METHODS, calibrate_risk
from adanet.calibration.temperature import expected_calibration_error, fit_temperatures
from adanet.cli.errors import CLIError
from adanet.cli.options import finite_float
from adanet.measure.evaluation import AnytimeEvaluation, evaluate_policy
from adanet.measure.latency import LatencyStats
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider

__all__ = [
    "PolicyOptions",
    "add_policy_options",
    "latency_json",
    "report_policy_rows",
    "risk_row",
    "run_row",
]


@dataclass(frozen=True)
class PolicyOptions:
    """What to calibrate or run besides the budgeted sweep.

    Attributes:
        max_accuracy_drop: ``eps`` of the guaranteed policy; ``None`` for none.
        delta: ``ltt``'s failure probability.
        risk_method: ``"ltt"``, ``"crc"`` or ``"naive"``.
        temperatures: Fit per-exit temperatures on validation and apply them to the
            guaranteed policy.
        policy: A user's policy to run (``adanet eval --policy``).
        policy_spec: Where ``policy`` came from, as given on the command line.
        budget_stride: Run every ``budget_stride``-th budget of the sweep's 39 for real
            (1: all of them).
    """

    max_accuracy_drop: float | None = None
    delta: float = 0.1
    risk_method: str = "ltt"
    temperatures: bool = False
    policy: ExitDecider | None = None
    policy_spec: str | None = None
    budget_stride: int = 1

    @property
    def needs_validation(self) -> bool:
        """Whether these options calibrate on held-out data."""
        return self.max_accuracy_drop is not None or self.temperatures

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PolicyOptions:
        """The options of a parsed command line (``policy`` is loaded later)."""
        if args.temperatures and args.max_accuracy_drop is None:
            raise CLIError("--temperatures applies to the --max-accuracy-drop policy; pass both")
        return cls(
            max_accuracy_drop=args.max_accuracy_drop,
            delta=args.delta,
            risk_method=args.risk_method,
            temperatures=args.temperatures,
            policy_spec=getattr(args, "policy", None),
            budget_stride=args.budget_stride,
        )

    def check_calibration_split(self, has_validation: bool) -> None:
        """Refuse to calibrate a guaranteed policy on the split it is tested on.

        Raises:
            CLIError: Without a validation split.
        """
        if self.needs_validation and not has_validation:
            raise CLIError(
                "--max-accuracy-drop calibrates on a validation split, and this run has none: "
                "train with --use-valid (calibrating on the test split would void the guarantee)"
            )


def _fraction(text: str) -> float:
    value = finite_float(0, inclusive=False)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-accuracy-drop``, ``--delta``, ``--risk-method`` and ``--temperatures``."""
    group = parser.add_argument_group("calibration with a guarantee (needs --use-valid)")
    group.add_argument(
        "--max-accuracy-drop",
        default=None,
        type=_fraction,
        metavar="EPS",
        help="also calibrate the cheapest thresholds whose accuracy drop against the last exit "
        "is at most EPS (a fraction, e.g. 0.02) on the validation split",
    )
    group.add_argument(
        "--delta",
        default=0.1,
        type=_fraction,
        metavar="D",
        help="ltt: the guarantee fails with probability at most D (default 0.1)",
    )
    group.add_argument(
        "--risk-method",
        default="ltt",
        choices=list(METHODS),
        help="ltt (with probability 1-D), crc (in expectation), naive (no guarantee)",
    )
    parser.add_argument(
        "--budget-stride",
        default=1,
        type=int,
        choices=range(1, 40),
        metavar="K",
        help="calibrate and run every K-th of the 39 budgets p = 1/20 .. 39/20 (default 1: all)",
    )
    group.add_argument(
        "--temperatures",
        action="store_true",
        help="fit per-exit temperatures on half of the validation split and apply them to "
        "that policy (calibrated on the other half)",
    )


def latency_json(stats: LatencyStats | None) -> dict[str, Any] | None:
    """``stats`` as a JSON object (``None`` stays ``None``)."""
    return None if stats is None else dataclasses.asdict(stats)


def run_row(
    model: EarlyExitNetwork,
    loader: Iterable[Any],
    policy: ExitDecider,
    costs: Sequence[float],
    *,
    baselines: bool = False,
) -> dict[str, Any]:
    """Run ``policy`` for real over ``loader``: accuracy, mean MACs, exit shares, latency
    (and, with ``baselines``, the all-exit and last-exit-only latencies)."""
    real = evaluate_policy(model, loader, policy, costs=costs, baselines=baselines)
    row: dict[str, Any] = {
        "accuracy": real.accuracy,
        "mean_macs": real.mean_cost,
        "exit_fractions": list(real.exit_fractions),
        "seconds_per_image": real.seconds_per_image,
        "latency": {"policy": latency_json(real.latency)},
    }
    if baselines:
        row["latency"]["all_exits"] = latency_json(real.all_exits_latency)
        row["latency"]["last_exit"] = latency_json(real.last_exit_latency)
    return row


def risk_row(
    model: EarlyExitNetwork,
    loader: Iterable[Any],
    val: AnytimeEvaluation,
    test: AnytimeEvaluation,
    costs: Sequence[float],
    options: PolicyOptions,
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """Calibrate the guaranteed policy on ``val`` and run it for real over ``loader``.

    With ``options.temperatures`` the temperatures are fitted on the even-indexed validation
    samples and the thresholds calibrated on the odd-indexed ones, so that the guarantee
    still rests on calibration data the policy's family was not chosen on.

    ``context`` holds the ``cost_convention`` and ``input_size`` the policy records.
    """
    eps = options.max_accuracy_drop
    if eps is None:
        raise ValueError("risk_row needs options.max_accuracy_drop")
    logits, targets = val.logits, val.targets
    temperatures = None
    if options.temperatures:
        # Temperatures fitted on the calibration samples themselves would make the threshold
        # family depend on them and void the guarantee: fit on every other validation sample
        # and calibrate on the rest.
        temperatures = fit_temperatures(logits[:, 0::2], targets[0::2])
        logits, targets = logits[:, 1::2], targets[1::2]
    policy = calibrate_risk(
        logits,
        targets,
        max_accuracy_drop=eps,
        delta=options.delta,
        method=options.risk_method,
        costs=costs,
        temperatures=temperatures,
        cost_convention=context.get("cost_convention"),
        input_size=context.get("input_size"),
    )
    row = run_row(model, loader, policy, costs)
    last = test.records[-1].top1
    row = {
        "method": options.risk_method,
        "max_accuracy_drop": eps,
        "delta": options.delta if options.risk_method == "ltt" else None,
        "policy": policy.to_dict(),
        "num_calibration": int(targets.shape[0]),
        "last_exit_accuracy": last,
        "accuracy_drop": last - row["accuracy"],
        **row,
    }
    if temperatures is not None:
        row["temperatures"] = {
            "values": list(temperatures),
            "num_fitted_on": int(val.targets[0::2].shape[0]),
            "test_ece_before": expected_calibration_error(test.logits, test.targets),
            "test_ece_after": expected_calibration_error(
                test.logits, test.targets, temperatures=temperatures
            ),
        }
    return row


def _ms(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "-"
    return (
        f"{stats['images_per_second']:.0f} img/s, p50 {1e3 * stats['p50_batch_seconds']:.2f} ms, "
        f"p95 {1e3 * stats['p95_batch_seconds']:.2f} ms per batch"
    )


def report_policy_rows(
    rows: Mapping[str, Mapping[str, Any]], full_macs: float, say: Callable[..., None] = print
) -> None:
    """Print the guaranteed (``"risk"``) and user (``"policy"``) rows, and latencies."""
    risk = rows.get("risk")
    if risk is not None:
        guarantee = {
            "ltt": f"with probability >= {1 - (risk['delta'] or 0):.2f}",
            "crc": "in expectation",
            "naive": "on the validation split only (no guarantee)",
        }[risk["method"]]
        say(
            f"\nGuaranteed policy ({risk['method']}: accuracy drop <= "
            f"{100 * risk['max_accuracy_drop']:.2f} points {guarantee}), on the test split:"
        )
        say(
            f"  top-1 {100 * risk['accuracy']:.2f}% (last exit "
            f"{100 * risk['last_exit_accuracy']:.2f}%, drop {100 * risk['accuracy_drop']:.2f} "
            f"points), {risk['mean_macs'] / 1e6:.3f} MMACs = "
            f"{100 * risk['mean_macs'] / full_macs:.1f}% of the full network"
        )
    custom = rows.get("policy")
    if custom is not None:
        say(
            f"\nPolicy {custom['spec']} on the test split: top-1 {100 * custom['accuracy']:.2f}%, "
            f"{100 * custom['mean_macs'] / full_macs:.1f}% of the full MACs, exit fractions "
            + " ".join(f"{f:.2f}" for f in custom["exit_fractions"])
        )
    timed = rows.get("latency")
    if timed is not None:
        say(f"\nLatency ({timed['what']}):")
        for name, key in (
            ("early exit", "policy"),
            ("all exits", "all_exits"),
            ("last exit only", "last_exit"),
        ):
            say(f"  {name:<14} {_ms(timed.get(key))}")
