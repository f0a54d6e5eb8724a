"""``early_exit``: real, batched early exit.

The network runs exit by exit (see :mod:`adanet.protocol`). After each exit the policy
decides which samples leave; their logits are stored, and the network carries on with the
remaining samples only, every tensor of its state compacted. A sample that leaves at exit
``k`` costs exactly the blocks up to exit ``k``; nothing is computed for it afterwards.

The only host–device synchronisation is one count per exit (how many samples remain),
which compaction needs to know the new batch size.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .costs import Convention, measure_exit_costs
from .policy import EarlyExitPolicy
from .protocol import EarlyExitNetwork, select_samples

__all__ = ["EarlyExitResult", "early_exit", "exit_costs_for"]


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


_COST_CACHE: weakref.WeakKeyDictionary[EarlyExitNetwork, dict[tuple[object, ...], Tensor]] = (
    weakref.WeakKeyDictionary()
)


def exit_costs_for(
    model: EarlyExitNetwork, image_shape: Sequence[int], convention: Convention = "actual"
) -> Tensor:
    """Per-exit cumulative costs of ``model`` for images of ``image_shape`` ``(C, H, W)``,
    measured once and cached per model (as a float64 CPU tensor)."""
    key = (tuple(int(v) for v in image_shape), convention)
    cache = _COST_CACHE.setdefault(model, {})
    if key not in cache:
        costs = measure_exit_costs(model, key[0], convention=convention)
        cache[key] = torch.tensor([c.macs for c in costs], dtype=torch.float64)
    return cache[key]


def early_exit(
    model: EarlyExitNetwork,
    x: Tensor,
    policy: EarlyExitPolicy,
    *,
    costs: Sequence[float] | Tensor | None = None,
    convention: Convention = "actual",
) -> EarlyExitResult:
    """Run ``model`` on ``x`` with real early exit under ``policy``.

    For the same decisions the logits equal those of the all-exit ``model(x)``: the samples
    that remain see exactly the same computation, only fewer of them.

    The model must be in eval mode: in train mode BatchNorm would normalise each shrinking
    sub-batch with its own statistics (and update its running statistics with them), so a
    sample's output would depend on which other samples left. Gradients are not tracked.

    Args:
        model: A network following adanet's early-exit protocol, in eval mode.
        x: ``[N, C, H, W]`` images.
        policy: Decides after each exit which samples leave.
        costs: Cumulative cost of each exit for one image; measured with
            :func:`measure_exit_costs` (and cached) when omitted.
        convention: The cost convention used when ``costs`` is omitted.

    Returns:
        The logits, exit index and cost of every sample, in input order.

    Raises:
        RuntimeError: The model is in train mode.
        ValueError: The policy or ``costs`` has another number of exits than the model, or
            the input is not a valid batch.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"early_exit needs an adanet.EarlyExitNetwork, got {type(model).__name__}")
    if model.training:
        raise RuntimeError(
            "early_exit needs the model in eval mode (call model.eval()): in train mode "
            "BatchNorm would use the statistics of each shrinking sub-batch"
        )
    model.check_input(x)
    num_exits = model.num_exits
    if policy.num_exits != num_exits:
        raise ValueError(
            f"the policy has {policy.num_exits} thresholds but the model has {num_exits} exits"
        )
    if costs is None:
        cost_table = exit_costs_for(model, x.shape[1:], convention)
    else:
        cost_table = torch.as_tensor(costs, dtype=torch.float64).flatten().cpu()
        if cost_table.numel() != num_exits:
            raise ValueError(f"costs has {cost_table.numel()} entries, the model {num_exits} exits")

    with torch.no_grad():
        n = x.shape[0]
        device = x.device
        remaining = torch.arange(n, device=device)  # input positions of the samples still in
        exit_index = torch.full((n,), num_exits - 1, dtype=torch.long, device=device)
        out: Tensor | None = None
        state = model.begin(x)
        decision_state = policy.initial_state(n, device)
        for k in range(num_exits):
            feature, state = model.advance(state, k)
            logits = model.exits[k](feature)  # [n_k, num_classes]
            if out is None:
                out = logits.new_empty((n, logits.shape[1]))
            if k == num_exits - 1:
                out.index_copy_(0, remaining, logits)
                break
            leaving, decision_state = policy.step(k, logits, decision_state)
            # A stable sort puts the staying samples first in their order; one count (the
            # single sync of this exit) splits staying from leaving.
            order = torch.argsort(leaving.to(torch.int8), stable=True)
            staying = int((~leaving).sum())
            gone = order[staying:]
            if gone.numel():
                out.index_copy_(0, remaining[gone], logits[gone])
                exit_index.index_fill_(0, remaining[gone], k)
            if staying == 0:
                break
            if staying < logits.shape[0]:
                kept = order[:staying]
                state = select_samples(state, kept)
                decision_state = select_samples(decision_state, kept)
                remaining = remaining[kept]
        assert out is not None  # num_exits >= 1
    cost = cost_table.to(device)[exit_index]
    return EarlyExitResult(logits=out, exit_index=exit_index, cost=cost)
