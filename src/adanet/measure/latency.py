"""Wall-clock costs: the time per image to reach each exit.

:func:`measure_exit_latency` times :func:`adanet.early_exit` itself under a policy that sends
every sample out at exit ``k``, for every ``k``, on the user's device, on a stream of distinct
random batches (:func:`adanet.measure.timing.time_stream`). The result is a list of
cumulative seconds per image, usable wherever adanet takes ``costs`` (calibration for a mean
cost, :func:`adanet.budgeted_sweep`, the plots): a budget in milliseconds instead of MACs.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from adanet._device import module_device
from adanet._validation import parse_input_size, require_int
from adanet.measure.timing import LatencyStats, latency_stats, time_stream
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import LogitsInput, stack_logits

# LatencyStats and latency_stats live in adanet.measure.timing; they are re-exported here,
# where they were first defined.
__all__ = ["LatencyStats", "latency_stats", "measure_exit_latency"]


class _ExitAt:
    """An :class:`adanet.ExitDecider` that sends every sample out at one exit."""

    def __init__(self, exit_index: int, num_exits: int) -> None:
        self.exit_index = exit_index
        self.num_exits = num_exits

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        return {}

    def step(
        self, exit_index: int, logits: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        leave = exit_index >= self.exit_index
        return torch.full((logits.shape[0],), leave, dtype=torch.bool, device=logits.device), {}

    def simulate(self, logits: LogitsInput) -> Tensor:
        stacked = stack_logits(logits)
        return torch.full(
            (stacked.shape[1],), self.exit_index, dtype=torch.long, device=stacked.device
        )


def measure_exit_latency(
    model: EarlyExitNetwork,
    input_size: int | Sequence[int],
    *,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    repeats: int = 10,
    warmup: int = 2,
) -> list[float]:
    """Cumulative seconds per image to reach each exit through the early-exit path.

    For each exit ``k``, :func:`adanet.early_exit` runs under a policy that sends every sample
    out at ``k``: the stem, the blocks up to ``k``, every head up to ``k`` and the policy's
    bookkeeping, exactly what a sample leaving at ``k`` pays. It is timed on a stream of
    ``repeats`` distinct random batches after ``warmup`` others (never one batch repeated);
    the median batch time is divided by the batch size. A later exit is never reported
    cheaper than an earlier one (timing noise is clipped by a running maximum), so the result
    is a valid cumulative cost list.

    Args:
        model: The network; it is run in eval mode and its training flag is restored.
        input_size: ``S``, ``(H, W)`` or ``(C, H, W)`` of the images.
        batch_size: Images per timed batch (time per image depends on it).
        device: Where to time; defaults to the model's device. On another device a copy of the
            model is timed and the model itself is left where it is.
        repeats: Timed batches per exit; at least 1.
        warmup: Untimed batches per exit first (kernel selection, caches); at least 0.

    Returns:
        Seconds per image for every exit, non-decreasing.

    Raises:
        TypeError: If ``model`` is not an :class:`adanet.EarlyExitNetwork`.
        ValueError: On a bad size, batch size or repeat count.
    """
    from adanet.inference.engine import early_exit

    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"measure_exit_latency needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    shape = parse_input_size(input_size, channels=model.in_channels)
    require_int("batch_size", batch_size, 1)
    require_int("repeats", repeats, 1)
    require_int("warmup", warmup, 0)
    batch, runs, warm = batch_size, repeats, warmup
    target = module_device(model) if device is None else torch.device(device)
    timed = model if target == module_device(model) else copy.deepcopy(model).to(target)
    dtype = next((p.dtype for p in timed.parameters() if p.is_floating_point()), torch.float32)
    zero_costs = [0.0] * model.num_exits
    was_training = timed.training
    timed.eval()
    per_image: list[float] = []
    try:
        for k in range(model.num_exits):
            policy = _ExitAt(k, model.num_exits)

            def leave_at_k(x: Tensor, policy: _ExitAt = policy) -> object:
                return early_exit(timed, x, policy, costs=zero_costs)

            stream = _random_batches(warm + runs, (batch, *shape), target, dtype)
            times = time_stream({"exit": leave_at_k}, stream, warmup=warm, device=target)
            per_image.append(statistics.median(times.seconds["exit"]) / batch)
    finally:
        timed.train(was_training)
    for k in range(1, len(per_image)):
        per_image[k] = max(per_image[k], per_image[k - 1])
    return per_image


def _random_batches(
    count: int, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> Iterator[Tensor]:
    # Made before timing starts (drawing random numbers is not what is timed).
    batches = [torch.randn(shape, device=device, dtype=dtype) for _ in range(count)]
    yield from batches
