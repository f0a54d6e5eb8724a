"""Training losses for multi-exit (early-exit) networks.

A multi-exit model's ``forward(x)`` returns one logits tensor ``[N, classes]`` per exit, ordered
from the cheapest (earliest) exit to the final one. This module turns that list into a scalar
training loss and provides the gradient-equilibrium primitive of IMTA.

Contents:

* :func:`multi_exit_cross_entropy` -- the RANet/MSDNet objective: a (weighted) sum over exits of
  the batch-mean cross-entropy. With ``weights=None`` it is the plain, unweighted sum used by the
  original RANet and MSDNet training scripts.
* :func:`exit_weights` / :func:`resolve_weights` -- per-exit weighting schemes and validation of
  user-supplied weight lists.
* :func:`self_distillation_loss` -- IMTA's one-for-all self-distillation from the final exit
  (Li et al., "Improved Techniques for Training Adaptive Deep Networks", ICCV 2019).
* :func:`gradient_rescale`, :func:`equilibrium_scale`, :func:`equilibrium_exit` -- IMTA's Gradient
  Equilibrium, which rescales the gradients that meet at each exit's branching point.
* :class:`MultiExitLoss` -- an ``nn.Module`` that selects between the two objectives (meant for a
  ``--loss ce|distill`` command-line flag).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMTA_GAMMA",
    "IMTA_TEMPERATURE",
    "GradientRescale",
    "KLReduction",
    "LossKind",
    "MultiExitLoss",
    "WeightScheme",
    "equilibrium_exit",
    "equilibrium_scale",
    "exit_weights",
    "gradient_rescale",
    "multi_exit_cross_entropy",
    "resolve_weights",
    "self_distillation_loss",
]

WeightScheme = Literal["uniform", "linear"]
"""Names accepted by :func:`exit_weights`."""

LossKind = Literal["ce", "distill"]
"""Objectives selectable through :class:`MultiExitLoss`."""

KLReduction = Literal["batchmean", "mean"]
"""How the distillation KL term is averaged; see :func:`self_distillation_loss`."""

IMTA_TEMPERATURE = 3.0
"""Default distillation temperature ``T`` of IMTA's ``args.py`` (``-T``)."""

IMTA_GAMMA = 0.9
"""Default distillation weight ``gamma`` of IMTA's ``args.py`` (``--gamma``)."""

_WEIGHT_SCHEMES: tuple[str, ...] = get_args(WeightScheme)
_LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
_KL_REDUCTIONS: tuple[str, ...] = get_args(KLReduction)

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Per-exit weights
# --------------------------------------------------------------------------------------------


def exit_weights(num_exits: int, scheme: WeightScheme = "uniform") -> list[float]:
    """Returns the per-exit loss weights of a named scheme.

    * ``"uniform"``: ``w_k = 1.0`` for every exit, so the weighted sum equals the plain sum used
      by the original RANet/MSDNet code.
    * ``"linear"``: ``w_k = (k + 1) / num_exits`` for ``k = 0 .. num_exits - 1``, i.e. weights grow
      linearly from ``1 / num_exits`` at the first exit to exactly ``1.0`` at the final exit
      (for 4 exits: ``[0.25, 0.5, 0.75, 1.0]``).

    Args:
        num_exits: Number of exits (at least 1).
        scheme: Name of the weighting scheme.

    Returns:
        A list of ``num_exits`` non-negative floats, ordered like the model's exits.

    Raises:
        ValueError: If ``num_exits < 1`` or ``scheme`` is unknown.
    """
    if isinstance(num_exits, bool) or not isinstance(num_exits, int) or num_exits < 1:
        raise ValueError(f"num_exits must be a positive integer, got {num_exits!r}")
    if scheme == "uniform":
        return [1.0] * num_exits
    if scheme == "linear":
        return [(k + 1) / num_exits for k in range(num_exits)]
    raise ValueError(f"unknown weight scheme {scheme!r}; expected one of {list(_WEIGHT_SCHEMES)}")


def resolve_weights(weights: Sequence[float] | WeightScheme | None, num_exits: int) -> list[float]:
    """Turns a weight specification into a validated list of per-exit weights.

    Args:
        weights: ``None`` (uniform weights of 1.0), the name of a scheme accepted by
            :func:`exit_weights`, or an explicit sequence of one weight per exit.
        num_exits: Number of exits the weights must cover.

    Returns:
        A list of ``num_exits`` finite, non-negative floats.

    Raises:
        ValueError: If the sequence length differs from ``num_exits``, or any weight is negative,
            NaN or infinite, or all weights are zero, or the scheme name is unknown.
    """
    if weights is None:
        return exit_weights(num_exits, "uniform")
    if isinstance(weights, str):
        return exit_weights(num_exits, weights)
    values = [float(w) for w in weights]
    if len(values) != num_exits:
        raise ValueError(
            f"got {len(values)} exit weights for {num_exits} exits; "
            "pass exactly one weight per exit"
        )
    for k, w in enumerate(values):
        if not math.isfinite(w) or w < 0.0:
            raise ValueError(f"exit weight {k} must be finite and non-negative, got {w!r}")
    # An all-zero weighting silently produces a loss with no gradient; that is never intended.
    if not any(w > 0.0 for w in values):
        raise ValueError("at least one exit weight must be positive")
    return values


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _check_logits(logits: Sequence[Tensor], target: Tensor) -> list[Tensor]:
    """Validates a list of per-exit logits against the target and returns it as a list."""
    outs = list(logits)
    if not outs:
        raise ValueError("logits is empty: expected one [N, classes] tensor per exit")
    if target.dim() == 0:
        raise ValueError("target must have a batch dimension, got a 0-d tensor")
    for k, out in enumerate(outs):
        if not isinstance(out, Tensor):
            raise TypeError(f"logits[{k}] must be a Tensor, got {type(out).__name__}")
        if out.dim() < 1 or out.shape[0] != target.shape[0]:
            raise ValueError(
                f"logits[{k}] has shape {tuple(out.shape)} but target has batch size "
                f"{target.shape[0]}"
            )
    return outs


def _check_temperature_gamma(temperature: float, gamma: float) -> None:
    if not math.isfinite(temperature) or temperature <= 0.0:
        raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
    if not math.isfinite(gamma) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")


def multi_exit_cross_entropy(
    logits: Sequence[Tensor],
    target: Tensor,
    weights: Sequence[float] | WeightScheme | None = None,
) -> Tensor:
    """Weighted sum over exits of the batch-mean cross-entropy.

    ``loss = sum_k w_k * CE(logits[k], target)`` where ``CE`` is
    :func:`torch.nn.functional.cross_entropy` with its default mean reduction. With
    ``weights=None`` every ``w_k`` is 1, which is exactly the objective of the original RANet and
    MSDNet training loops (``loss += criterion(output[j], target)`` over all exits).

    Args:
        logits: One ``[N, classes]`` tensor per exit, earliest exit first.
        target: Class indices ``[N]``.
        weights: ``None``, a scheme name (see :func:`exit_weights`) or one weight per exit.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: If ``logits`` is empty, a batch size disagrees with ``target``, or the weights
            are invalid (see :func:`resolve_weights`).
    """
    outs = _check_logits(logits, target)
    ws = resolve_weights(weights, len(outs))
    total = outs[0].new_zeros(())
    for w, out in zip(ws, outs, strict=True):
        total = total + w * F.cross_entropy(out, target)
    return total


def self_distillation_loss(
    logits: Sequence[Tensor],
    target: Tensor,
    temperature: float = IMTA_TEMPERATURE,
    gamma: float = IMTA_GAMMA,
    weights: Sequence[float] | WeightScheme | None = None,
    *,
    teacher: Tensor | None = None,
    kl_reduction: KLReduction = "batchmean",
) -> Tensor:
    """IMTA's one-for-all self-distillation from the final exit.

    With ``L = len(logits)`` exits, logits ``z_k``, teacher ``z_t`` (by default the final exit's
    logits ``z_{L-1}``, detached so no gradient flows into the teacher), temperature ``T`` and
    distillation weight ``gamma``::

        loss = w_{L-1} * CE(z_{L-1}, y)
             + sum_{k < L-1} w_k * [ (1 - gamma) * CE(z_k, y)
                                     + gamma * T^2 * KL( softmax(z_t / T) || softmax(z_k / T) ) ]

    This is ``KDLoss.loss_fn_kd`` of the official IMTA code (github.com/kalviny/IMTA,
    ``utils.py``), which computes ``ce(outputs[-1], y)`` plus, for every earlier exit,
    ``(1 - gamma) * ce(outputs[i], y) + kld(log_softmax(outputs[i] / T),
    softmax(soft_targets.detach() / T)) * gamma * T * T``. IMTA's defaults (``args.py``) are
    ``T = 3.0`` and ``gamma = 0.9``; its ImageNet script uses ``T = 1.0, gamma = 0.1``. The
    ``T^2`` factor keeps the soft-target gradients on the same scale as the hard-label ones
    (Hinton et al., 2015). ``w_k`` are optional per-exit weights (all 1 in IMTA).

    The KL term averages over the batch according to ``kl_reduction``:

    * ``"batchmean"`` (default): sum over classes, mean over the batch -- the mathematical
      per-sample KL divergence of the IMTA paper.
    * ``"mean"``: mean over batch *and* classes. This is what the IMTA code literally computes,
      because it uses ``nn.KLDivLoss()`` with PyTorch's default element-wise ``"mean"``
      reduction; it shrinks the distillation term by a factor of ``classes``. Use it only to
      reproduce IMTA's numbers exactly.

    With a single exit the loss reduces to ``w_0 * CE(z_0, y)``.

    Args:
        logits: One ``[N, classes]`` tensor per exit, earliest exit first.
        target: Class indices ``[N]``.
        temperature: Softmax temperature ``T > 0``.
        gamma: Weight of the distillation term, in ``[0, 1]``.
        weights: ``None``, a scheme name (see :func:`exit_weights`) or one weight per exit.
        teacher: Optional teacher logits ``[N, classes]`` replacing the final exit's logits as
            the soft target (IMTA's training loop feeds the backbone's final logits here). It
            is always detached.
        kl_reduction: ``"batchmean"`` or ``"mean"``, see above.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: On empty ``logits``, mismatched batch sizes, invalid weights, a non-positive
            or non-finite ``temperature``, ``gamma`` outside ``[0, 1]`` or an unknown
            ``kl_reduction``.
    """
    _check_temperature_gamma(temperature, gamma)
    if kl_reduction not in _KL_REDUCTIONS:
        raise ValueError(
            f"unknown kl_reduction {kl_reduction!r}; expected one of {list(_KL_REDUCTIONS)}"
        )
    outs = _check_logits(logits, target)
    ws = resolve_weights(weights, len(outs))

    soft_source = outs[-1] if teacher is None else teacher
    if soft_source.shape != outs[-1].shape:
        raise ValueError(
            f"teacher has shape {tuple(soft_source.shape)}, expected {tuple(outs[-1].shape)}"
        )
    # Detached: the final exit (teacher) is trained by its own CE term only; IMTA detaches too.
    soft_target = F.softmax(soft_source.detach() / temperature, dim=1)

    total = ws[-1] * F.cross_entropy(outs[-1], target)
    for w, out in zip(ws[:-1], outs[:-1], strict=True):
        ce = F.cross_entropy(out, target)
        kl = F.kl_div(F.log_softmax(out / temperature, dim=1), soft_target, reduction="batchmean")
        if kl_reduction == "mean":
            # Element-wise mean = batchmean / classes. Spelled out because PyTorch warns that
            # its "mean" reduction will change meaning to "batchmean" in a future release.
            kl = kl / out.shape[1]
        total = total + w * ((1.0 - gamma) * ce + gamma * temperature * temperature * kl)
    return total


class MultiExitLoss(nn.Module):
    """Selects the training objective for a multi-exit model.

    ``MultiExitLoss("ce")`` computes :func:`multi_exit_cross_entropy` and
    ``MultiExitLoss("distill")`` computes :func:`self_distillation_loss`; ``forward`` takes the
    model's list of per-exit logits and the targets.

    Args:
        kind: ``"ce"`` or ``"distill"``.
        weights: ``None``, a scheme name or one weight per exit. Explicit lists are validated
            against the number of exits at call time, when that number is known.
        temperature: Distillation temperature (ignored for ``"ce"``).
        gamma: Distillation weight (ignored for ``"ce"``).
        kl_reduction: KL averaging for ``"distill"``, see :func:`self_distillation_loss`.

    Raises:
        ValueError: On an unknown ``kind``, bad ``temperature``/``gamma``/``kl_reduction``, or
            invalid explicit weights (negative, non-finite, all zero).
    """

    def __init__(
        self,
        kind: LossKind = "ce",
        weights: Sequence[float] | WeightScheme | None = None,
        temperature: float = IMTA_TEMPERATURE,
        gamma: float = IMTA_GAMMA,
        kl_reduction: KLReduction = "batchmean",
    ) -> None:
        super().__init__()
        if kind not in _LOSS_KINDS:
            raise ValueError(f"unknown loss kind {kind!r}; expected one of {list(_LOSS_KINDS)}")
        _check_temperature_gamma(temperature, gamma)
        if kl_reduction not in _KL_REDUCTIONS:
            raise ValueError(
                f"unknown kl_reduction {kl_reduction!r}; expected one of {list(_KL_REDUCTIONS)}"
            )
        if isinstance(weights, str):
            exit_weights(1, weights)  # fail fast on an unknown scheme name
            self.weights: tuple[float, ...] | str | None = weights
        elif weights is not None:
            # Validate values now; the length is checked once the number of exits is known.
            self.weights = tuple(resolve_weights(weights, len(weights)))
        else:
            self.weights = None
        self.kind: LossKind = kind
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.kl_reduction: KLReduction = kl_reduction

    def forward(self, logits: Sequence[Tensor], target: Tensor) -> Tensor:
        """Computes the selected loss.

        Args:
            logits: One ``[N, classes]`` tensor per exit, earliest exit first.
            target: Class indices ``[N]``.

        Returns:
            A scalar tensor.
        """
        weights: Any = self.weights
        if self.kind == "ce":
            return multi_exit_cross_entropy(logits, target, weights)
        return self_distillation_loss(
            logits,
            target,
            self.temperature,
            self.gamma,
            weights,
            kl_reduction=self.kl_reduction,
        )

    def extra_repr(self) -> str:
        text = f"kind={self.kind!r}, weights={self.weights!r}"
        if self.kind == "distill":
            text += (
                f", temperature={self.temperature}, gamma={self.gamma}, "
                f"kl_reduction={self.kl_reduction!r}"
            )
        return text


# --------------------------------------------------------------------------------------------
# Gradient Equilibrium (IMTA)
# --------------------------------------------------------------------------------------------


class GradientRescale(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` backwards."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        # A view (not ``x`` itself) so autograd records this node; no copy is made.
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * ctx.scale, None


def gradient_rescale(x: Tensor, scale: float) -> Tensor:
    """Returns ``x`` unchanged but scales the gradient flowing back through it by ``scale``.

    Args:
        x: Any tensor.
        scale: Finite factor applied to the gradient (may be 0, which blocks the gradient).

    Returns:
        A view of ``x`` with the same values.

    Raises:
        ValueError: If ``scale`` is not finite.
    """
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    out: Tensor = GradientRescale.apply(x, float(scale))
    return out


def equilibrium_scale(exit_index: int, num_exits: int) -> tuple[float, float]:
    """IMTA's Gradient Equilibrium factors at exit ``exit_index`` (0-based) of ``num_exits``.

    Returns ``(head_scale, trunk_scale) = (1 / (num_exits - i), num_exits - i - 1)``. These are
    the two ``gradient_rescale`` factors of the official IMTA code (``models/msdnet_ge.py``)::

        x[-1] = gradient_rescale(x[-1], 1.0 / (nBlocks - i))   # before classifier i
        pred, _ = classifier[i](x)
        x[-1] = gradient_rescale(x[-1], nBlocks - i - 1)       # before block i + 1

    Applied in that order, the gradient reaching block ``i``'s output is
    ``(g_head + (n - i - 1) * g_trunk) / (n - i)``: the exit's own gradient is scaled by
    ``1 / (n - i)`` and the gradient from the ``n - i - 1`` later exits by
    ``(n - i - 1) / (n - i)``. When every exit contributes a comparable gradient this is an
    average rather than a sum, so early blocks no longer receive gradients that grow with the
    number of later exits. At the final exit the trunk factor is 0 (nothing follows it).

    Args:
        exit_index: 0-based index of the exit.
        num_exits: Total number of exits.

    Returns:
        ``(head_scale, trunk_scale)``.

    Raises:
        ValueError: If ``num_exits < 1`` or ``exit_index`` is not in ``[0, num_exits)``.
    """
    if num_exits < 1:
        raise ValueError(f"num_exits must be >= 1, got {num_exits}")
    if not 0 <= exit_index < num_exits:
        raise ValueError(f"exit_index must be in [0, {num_exits}), got {exit_index}")
    remaining = num_exits - exit_index
    return 1.0 / remaining, float(remaining - 1)


def equilibrium_exit(
    features: Tensor, head: Callable[[Tensor], _T], exit_index: int, num_exits: int
) -> tuple[_T, Tensor]:
    """Runs an exit head with IMTA's Gradient Equilibrium around its branching point.

    A network applies Gradient Equilibrium by routing the tensor that feeds exit ``i``'s
    classifier *and* the next block through this helper::

        logits_i, h = equilibrium_exit(h, classifier[i], i, num_exits)
        h = block[i + 1](h)

    instead of ``logits_i = classifier[i](h)``. The forward values are unchanged; only the
    gradients are rescaled as in :func:`equilibrium_scale`. In IMTA's MSDNet the rescaled tensor is
    the coarsest-scale feature map (``x[-1]``), the only one the classifier reads; a multi-scale
    network should rescale exactly the tensor(s) shared between the head and the trunk.

    Args:
        features: Tensor consumed by both the exit head and the following block.
        head: The exit classifier (any callable taking the features).
        exit_index: 0-based index of the exit.
        num_exits: Total number of exits.

    Returns:
        ``(head(features'), features'')`` where both are value-identical to the unscaled
        computation; pass the second element on to the next block.
    """
    head_scale, trunk_scale = equilibrium_scale(exit_index, num_exits)
    scaled = gradient_rescale(features, head_scale)
    out = head(scaled)
    return out, gradient_rescale(scaled, trunk_scale)
