"""``early_exit``: real, batched early exit.

The network runs exit by exit (see :mod:`adanet.models.early_exit_network`). After each exit
the policy decides which samples leave (:func:`_decide`, the one step that looks at the
logits); their logits are stored, and the network carries on with the remaining samples only.
A sample that leaves at exit ``k`` is charged exactly the blocks up to exit ``k``.

Shape-stable compaction: the number of remaining samples is rounded up to a bucket size
(:mod:`adanet.inference.buckets`), so later stages see a bounded set of batch shapes and
reuse their kernels across a stream of batches. The state is compacted (every tensor of it
copied to the remaining rows) only when that bucket shrinks; otherwise the rows of samples
that left stay in the batch as padding. Padding rows are never read back: the policy, the
logits, the exit indices and the costs only ever see the real samples.

The only host–device synchronisation is one count per exit (how many samples remain),
which compaction needs to know the new batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from adanet._validation import check_costs, is_int, require_index
from adanet.costs.cache import exit_costs_for, resolve_convention
from adanet.costs.counting import Convention
from adanet.inference.buckets import BucketSpec, SizeBuckets
from adanet.inference.budget import BudgetGuard
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.state import select_samples
from adanet.models.walk import ExitWalk
from adanet.policies.protocol import ExitDecider, check_policy, check_policy_fits

__all__ = ["EarlyExitResult", "early_exit", "run_to_exit"]


@dataclass(frozen=True)
class EarlyExitResult:
    """What :func:`early_exit` returns.

    Attributes:
        logits: ``[N, num_classes]``: each sample's logits from the exit it left at.
        exit_index: ``[N]`` int64: the exit each sample left at.
        cost: ``[N]`` float64: the cumulative cost (MACs) each sample paid.
    """

    logits: Tensor
    exit_index: Tensor
    cost: Tensor

    @property
    def mean_cost(self) -> float:
        """Mean cost per sample."""
        return float(self.cost.mean())

    def exit_fractions(self, num_exits: int) -> list[float]:
        """Share of the samples that left at each exit."""
        counts = torch.bincount(self.exit_index.cpu(), minlength=num_exits)
        return (counts.double() / max(1, self.exit_index.numel())).tolist()


def _cost_table(
    model: EarlyExitNetwork,
    x: Tensor,
    policy: ExitDecider,
    costs: Sequence[float] | Tensor | None,
    convention: Convention | None,
) -> Tensor:
    if costs is None:
        return exit_costs_for(model, x.shape[1:], resolve_convention(policy, convention))
    if not isinstance(costs, list | tuple) or not all(isinstance(c, float | int) for c in costs):
        return torch.tensor(check_costs(costs, model.num_exits), dtype=torch.float64)
    # The same list of costs comes with every batch of a stream: check and convert it once.
    key = tuple(costs)
    table = _CHECKED_COSTS.get(key)
    if table is None or table.shape[0] != model.num_exits:
        table = torch.tensor(check_costs(costs, model.num_exits), dtype=torch.float64)
        if len(_CHECKED_COSTS) >= 64:
            _CHECKED_COSTS.clear()
        _CHECKED_COSTS[key] = table
    return table


# Cost lists already checked, by value (bounded: cleared when it grows past 64 entries).
_CHECKED_COSTS: dict[tuple[object, ...], Tensor] = {}
# Policy classes that passed the protocol check; a runtime Protocol isinstance check costs tens
# of microseconds, a batch-1 early exit a few hundred.
_POLICY_TYPES: set[type] = set()


def _checked_policy(policy: object) -> ExitDecider:
    if type(policy) not in _POLICY_TYPES:
        checked = check_policy(policy)
        _POLICY_TYPES.add(type(policy))
        return checked
    num_exits = getattr(policy, "num_exits", None)
    if not is_int(num_exits) or num_exits < 1:
        return check_policy(policy)  # raises, naming the problem
    return cast(ExitDecider, policy)


def early_exit(
    model: EarlyExitNetwork,
    x: Tensor,
    policy: ExitDecider,
    *,
    costs: Sequence[float] | Tensor | None = None,
    convention: Convention | None = None,
    buckets: BucketSpec = "auto",
    budget: float | None = None,
) -> EarlyExitResult:
    """Run ``model`` on ``x`` with real early exit under ``policy``.

    For the same decisions the logits equal those of the all-exit ``model(x)``: the samples
    that remain see exactly the same computation, only fewer of them.

    The model must be in eval mode: in train mode BatchNorm would normalise each shrinking
    sub-batch with its own statistics (and update its running statistics with them), so a
    sample's output would depend on which other samples left. Gradients are not tracked.

    Images holding NaN give NaN logits; a threshold policy never finds them confident, so they
    go to the last exit (and cost the whole network) without disturbing the other samples.

    Args:
        model: A network following adanet's early-exit protocol, in eval mode.
        x: ``[N, C, H, W]`` images.
        policy: Any :class:`adanet.ExitDecider`; it decides after each exit which samples leave.
        costs: Cumulative cost of each exit for one image (finite, non-negative,
            non-decreasing); measured with :func:`measure_exit_costs` (and cached) when omitted.
        convention: The cost convention used when ``costs`` is omitted; defaults to the one the
            policy records, else ``"actual"``.
        buckets: The sub-batch sizes the staying samples are padded to, so that later stages
            see a bounded set of shapes and reuse their kernels across batches (see
            :mod:`adanet.inference.buckets`): ``"auto"`` (the default: multiples of 8 up to
            64, then half octaves),
            ``"exact"`` or ``None`` (no padding), ``"pow2"``, ``"half-octave"``, an int
            multiple, a sequence of sizes or a :class:`~adanet.inference.SizeBuckets`.
            Padding rows never reach the logits, exit indices, costs or the policy; the real
            samples' results equal the unpadded computation up to float rounding.
        budget: The most the whole batch may cost, in the units of the costs (MACs unless
            ``costs`` says otherwise). Where the samples that want to stay cannot all afford the
            next exit, the ones closest to leaving by the policy's measure leave now (see
            :mod:`adanet.inference.budget`); ``sum(result.cost) <= budget``. A budget that
            never binds changes nothing. ``None``: no limit.

    Returns:
        The logits, exit index and cost of every sample, in input order.

    Raises:
        TypeError: ``model`` or ``policy`` does not follow its protocol (e.g. ``None``).
        RuntimeError: The model is in train mode.
        ValueError: The policy was calibrated for another number of exits or classes, input
            size or cost convention; bad ``costs`` or ``buckets``; the input is not a valid
            batch; or ``budget`` is negative, NaN, or cannot pay the first exit of every image.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"early_exit needs an adanet.EarlyExitNetwork, got {type(model).__name__}")
    policy = _checked_policy(policy)
    if model.training:
        raise RuntimeError(
            "early_exit needs the model in eval mode (call model.eval()): in train mode "
            "BatchNorm would use the statistics of each shrinking sub-batch"
        )
    model.check_input(x)
    num_exits = model.num_exits
    check_policy_fits(policy, num_exits=num_exits, input_size=tuple(x.shape[2:]))
    cost_table = _cost_table(model, x, policy, costs, convention)
    sizes = SizeBuckets.parse(buckets)
    # --- per-batch budget (adanet.inference.budget): validated before any work is done.
    guard = None if budget is None else BudgetGuard(policy, cost_table, budget, x.shape[0])

    with torch.no_grad():
        logits, exit_index = _run(model, x, policy, sizes, guard)
    cost = cost_table.to(x.device)[exit_index]
    return EarlyExitResult(logits=logits, exit_index=exit_index, cost=cost)


def _run(
    model: EarlyExitNetwork,
    x: Tensor,
    policy: ExitDecider,
    buckets: SizeBuckets,
    guard: BudgetGuard | None = None,
) -> tuple[Tensor, Tensor]:
    """Each sample's logits from the exit it leaves at, and that exit: the early-exit loop."""
    n, num_exits = x.shape[0], model.num_exits
    batch = _Batch(torch.arange(n, device=x.device), None, n)
    exit_index = torch.full((n,), num_exits - 1, dtype=torch.long, device=x.device)
    out: Tensor | None = None
    walk = ExitWalk(model, x)
    decision_state = policy.initial_state(n, x.device)
    for k, feature in enumerate(walk.features()):
        logits = batch.real_rows(walk.head(feature))  # [m, num_classes], no padding row
        if out is None:
            check_policy_fits(policy, num_exits=num_exits, num_classes=logits.shape[1])
            out = logits.new_empty((n, logits.shape[1]))
        if k == num_exits - 1:
            out.index_copy_(0, batch.remaining, logits)
            break
        leaving, decision_state = _decide(policy, k, logits, decision_state)
        if guard is not None:  # --- per-batch budget: force out whom the budget cannot carry
            leaving = guard.limit(k, logits, leaving, decision_state)
        # One count (the single sync of this exit) splits staying from leaving.
        count = logits.shape[0]
        staying = count - int(leaving.sum())
        if staying == 0:  # everybody leaves
            out.index_copy_(0, batch.remaining, logits)
            exit_index.index_fill_(0, batch.remaining, k)
            break
        if staying == count:  # nobody leaves
            continue
        # A stable sort puts the staying samples first, in their order.
        order = torch.argsort(leaving.to(torch.int8), stable=True)
        gone = order[staying:]
        out.index_copy_(0, batch.remaining[gone], logits[gone])
        exit_index.index_fill_(0, batch.remaining[gone], k)
        kept = order[:staying]
        decision_state = select_samples(decision_state, kept)
        batch.keep(kept, buckets, walk)
    assert out is not None  # num_exits >= 1
    return out, exit_index


def _decide(policy: ExitDecider, exit_index: int, logits: Tensor, state: Any) -> tuple[Tensor, Any]:
    """The policy's decision at one exit: which of the real samples leave, and its new state.

    Only real samples reach the policy (never a padding row), so its state and decisions are
    those of the unpadded computation.
    """
    leaving, state = policy.step(exit_index, logits, state)
    return _checked_mask(policy, leaving, logits.shape[0]), state


class _Batch:
    """Where the samples still in the network sit in the batch the network runs on.

    The running batch holds the real samples and, after a bucketed compaction, padding rows
    (copies of a real row, or the rows of samples that left while the bucket stayed the
    same). Padding is computed like any row, per sample (every layer works per sample in eval
    mode), and never read back.

    Attributes:
        remaining: ``[m]`` input positions of the samples still in.
        rows: ``[m]`` their rows in the running batch; ``None`` when they are its first ``m``.
        size: Rows of the running batch (``>= m``).
    """

    def __init__(self, remaining: Tensor, rows: Tensor | None, size: int) -> None:
        self.remaining = remaining
        self.rows = rows
        self.size = size

    def real_rows(self, values: Tensor) -> Tensor:
        """The rows of ``values`` (one per row of the running batch) of the real samples."""
        if self.rows is not None:
            return values.index_select(0, self.rows)
        m = self.remaining.shape[0]
        return values if m == self.size else values[:m]

    def keep(self, kept: Tensor, buckets: SizeBuckets, walk: ExitWalk) -> None:
        """Carry on with the real samples ``kept`` (positions among the current ones).

        The state is compacted only when the bucket of the new count is smaller than the
        running batch; otherwise the samples that left stay as padding, which costs no copy.
        """
        self.remaining = self.remaining[kept]
        rows = kept if self.rows is None else self.rows[kept]
        count = rows.shape[0]
        target = buckets.size_for(count, self.size)
        if target == self.size:
            self.rows = rows
            return
        if target > count:  # padding rows: copies of the first real one
            rows = torch.cat([rows, rows[:1].expand(target - count)])
        walk.keep(rows)
        self.rows, self.size = None, target


def _checked_mask(policy: ExitDecider, leaving: object, n: int) -> Tensor:
    if not isinstance(leaving, Tensor) or leaving.shape != (n,):
        shown = tuple(leaving.shape) if isinstance(leaving, Tensor) else repr(leaving)
        raise ValueError(f"{type(policy).__name__}.step must return a [{n}] bool mask, got {shown}")
    return leaving.to(torch.bool)


def run_to_exit(model: EarlyExitNetwork, x: Tensor, exit_index: int) -> Tensor:
    """The logits of exit ``exit_index`` for every image, computing no other exit's head.

    The static network truncated at that exit: what a deployment without early exit runs
    (``exit_index = model.num_exits - 1`` is the full network), and the baseline early exit is
    measured against. Gradients are tracked as in ``model(x)``; call it under
    ``torch.no_grad()`` for inference.

    Args:
        model: A network following adanet's early-exit protocol.
        x: ``[N, C, H, W]`` images.
        exit_index: The exit, ``0 <= exit_index < model.num_exits``; negative values count
            from the end (``-1`` is the last exit).

    Returns:
        ``[N, num_classes]`` logits.

    Raises:
        TypeError: ``model`` does not follow the protocol, or ``exit_index`` is not an int.
        ValueError: ``exit_index`` is out of range, or ``x`` is not a valid batch.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"run_to_exit needs an adanet.EarlyExitNetwork, got {type(model).__name__}")
    target = require_index("exit_index", exit_index, model.num_exits)
    model.check_input(x)
    walk = ExitWalk(model, x)
    feature = walk.advance()
    while walk.next_exit <= target:
        feature = walk.advance()
    return walk.head(feature)
