"""The :class:`ExitDecider` protocol: what :func:`adanet.early_exit` needs from a policy.

A policy decides, exit by exit, which samples leave. Anything with these four members works
with :func:`adanet.early_exit`, :func:`adanet.evaluate_policy` and
:func:`adanet.budgeted_sweep`; it does not need to subclass anything in adanet:

* ``num_exits``: the number of exits it decides for.
* ``initial_state(batch_size, device)``: the per-sample state carried from exit to exit,
  before the first exit. Any nesting of lists, tuples, dicts and dataclasses of batch-first
  tensors (``{}`` for a stateless rule).
* ``step(exit_index, logits, state)``: given exit ``exit_index``'s ``[n, classes]`` logits of
  the ``n`` samples still in the network and their state, returns a ``[n]`` bool mask (True =
  leave now) and the new state for the same ``n`` samples. :func:`adanet.early_exit` then keeps
  only the staying samples of the state with :func:`adanet.select_samples`, so every tensor in
  it must be batch-first. At the last exit every sample leaves, whatever the mask says.
* ``simulate(logits)``: the same decisions for ``[exits, N, classes]`` logits of every exit,
  vectorised: a ``[N]`` int64 tensor of exit indices. It must agree with driving ``step``.

Optional attributes ``num_classes``, ``input_size`` (``(H, W)``) and ``cost_convention``
state what the policy was calibrated for; when present and not ``None``,
:func:`check_policy_fits` refuses a model that differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from adanet._validation import is_int

__all__ = [
    "ExitDecider",
    "LogitsInput",
    "check_batch_size",
    "check_policy",
    "check_policy_fits",
    "check_step_args",
    "policy_exits",
    "stack_logits",
]

#: Per-exit logits: a ``[exits, samples, classes]`` tensor or one ``[samples, classes]`` tensor per
#: exit.
LogitsInput = Tensor | Sequence[Tensor]

_MEMBERS = ("num_exits", "initial_state", "step", "simulate")


@runtime_checkable
class ExitDecider(Protocol):
    """Structural type of an early-exit policy (see the module docstring for the contract)."""

    @property
    def num_exits(self) -> int:
        """Number of exits the policy decides for."""
        ...

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Any:
        """Batch-first per-sample state before the first exit."""
        ...

    def step(self, exit_index: int, logits: Tensor, state: Any) -> tuple[Tensor, Any]:
        """``[n]`` bool mask of the samples that leave at ``exit_index``, and the new state."""
        ...

    def simulate(self, logits: LogitsInput) -> Tensor:
        """Exit index of every sample from the logits of every exit, ``[N]`` int64."""
        ...


def check_policy(policy: object, name: str = "policy") -> ExitDecider:
    """Returns ``policy`` if it follows :class:`ExitDecider`.

    Raises:
        TypeError: If it lacks a member of the protocol (for example ``None``).
    """
    missing = [m for m in _MEMBERS if not hasattr(policy, m)]
    if missing or not isinstance(policy, ExitDecider):
        raise TypeError(
            f"{name} must be an ExitDecider (an object with num_exits, initial_state, step and "
            f"simulate, e.g. adanet.EarlyExitPolicy), got {type(policy).__name__}"
            + (f" lacking {missing}" if missing and policy is not None else "")
        )
    num_exits = policy.num_exits
    if not is_int(num_exits) or num_exits < 1:
        raise TypeError(f"{name}.num_exits must be an int >= 1, got {num_exits!r}")
    return policy


def check_policy_fits(
    policy: ExitDecider,
    *,
    num_exits: int,
    num_classes: int | None = None,
    input_size: Sequence[int] | None = None,
    cost_convention: str | None = None,
) -> None:
    """Refuses a policy calibrated for another model.

    Each of ``num_classes``, ``input_size`` (``(H, W)``) and ``cost_convention`` is compared
    only when both the argument and the policy's attribute of that name are known.

    Raises:
        ValueError: Naming what the policy was calibrated for and what it is applied to.
    """
    if policy.num_exits != num_exits:
        raise ValueError(
            f"the policy decides for {policy.num_exits} exits but the model has {num_exits}; "
            "calibrate a policy for this model"
        )
    checks: list[tuple[str, object, object]] = [
        ("num_classes", getattr(policy, "num_classes", None), num_classes),
        ("input_size", _hw(getattr(policy, "input_size", None)), _hw(input_size)),
        ("cost_convention", getattr(policy, "cost_convention", None), cost_convention),
    ]
    for what, recorded, actual in checks:
        if recorded is not None and actual is not None and recorded != actual:
            raise ValueError(
                f"the policy was calibrated for {what}={recorded!r} but is applied with "
                f"{what}={actual!r}; calibrate a policy for this model and input"
            )


def _hw(size: object) -> tuple[int, ...] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    values = tuple(int(v) for v in size)  # type: ignore[attr-defined]
    return values[-2:]


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` for a policy's ``initial_state``: an int >= 0.

    Raises:
        ValueError: Anything else (a bool, a float, a negative number).
    """
    if not is_int(batch_size) or batch_size < 0:
        raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
    return batch_size


def check_step_args(exit_index: object, logits: object, num_exits: int) -> None:
    """The arguments of a policy's ``step``: an exit index in range and one exit's logits.

    Raises:
        ValueError: A non-int or out-of-range ``exit_index``, or logits that are not a
            ``[samples, classes]`` tensor.
    """
    if not is_int(exit_index):
        raise ValueError(f"exit_index must be an int, got {exit_index!r}")
    if not 0 <= exit_index < num_exits:
        raise ValueError(
            f"exit_index {exit_index} is out of range for a policy with {num_exits} exits"
        )
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"step() takes one exit's logits of shape [samples, classes], got {shape}")


def stack_logits(logits: LogitsInput, name: str = "logits") -> Tensor:
    """Returns per-exit logits as one ``[exits, samples, classes]`` tensor.

    Raises:
        TypeError: If ``logits`` is neither a tensor nor a sequence of tensors.
        ValueError: On a wrong rank, exits of different shapes, no exits or no classes.
    """
    if isinstance(logits, Tensor):
        if logits.ndim != 3:
            raise ValueError(
                f"{name} must have shape [exits, samples, classes] (3 dimensions), got a tensor "
                f"with {logits.ndim} dimension(s) and shape {tuple(logits.shape)}"
            )
        stacked = logits
    else:
        if isinstance(logits, str | bytes) or not isinstance(logits, Sequence):
            raise TypeError(
                f"{name} must be a [exits, samples, classes] tensor or a sequence of "
                f"[samples, classes] tensors, got {type(logits).__name__}"
            )
        parts = list(logits)
        if not parts:
            raise ValueError(f"{name} must contain at least one exit, got an empty sequence")
        for k, part in enumerate(parts):
            if not isinstance(part, Tensor) or part.ndim != 2:
                shape = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(
                    f"each exit's {name} must be a [samples, classes] tensor; exit {k} is {shape}"
                )
            if part.shape != parts[0].shape:
                raise ValueError(
                    f"all exits must have the same [samples, classes] shape; exit 0 has "
                    f"{tuple(parts[0].shape)} but exit {k} has {tuple(part.shape)}"
                )
        stacked = torch.stack(parts)
    if stacked.shape[0] < 1:
        raise ValueError(f"{name} must contain at least one exit")
    if stacked.shape[2] < 1:
        raise ValueError(f"{name} must have at least one class")
    if not stacked.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {stacked.dtype}")
    return stacked


def policy_exits(policy: ExitDecider, logits: Tensor) -> Tensor:
    """``policy.simulate(logits)``, checked: one int64 exit index in range per sample.

    Args:
        policy: Any :class:`ExitDecider`.
        logits: ``[exits, N, classes]``.

    Raises:
        ValueError: If the policy's answer is not a ``[N]`` integer tensor of valid exits.
    """
    exits = policy.simulate(logits)
    num_exits, num_samples = logits.shape[0], logits.shape[1]
    if (
        not isinstance(exits, Tensor)
        or exits.shape != (num_samples,)
        or exits.is_floating_point()
        or exits.dtype == torch.bool
    ):
        got = tuple(exits.shape) if isinstance(exits, Tensor) else type(exits).__name__
        raise ValueError(
            f"{type(policy).__name__}.simulate must return a [{num_samples}] integer tensor of "
            f"exit indices, got {got}"
        )
    exits = exits.long()
    if num_samples and (int(exits.min()) < 0 or int(exits.max()) >= num_exits):
        raise ValueError(
            f"{type(policy).__name__}.simulate returned exit indices outside [0, {num_exits})"
        )
    return exits
