"""The training objectives of a multi-exit network: the (weighted) sum of the exits'
cross-entropies, IMTA's self-distillation from the final exit, and :class:`MultiExitLoss`,
which selects between the two."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from adanet._validation import require_choice, require_fraction
from adanet.training.losses.weighting import WeightScheme, exit_weights, resolve_weights

__all__ = [
    "IMTA_GAMMA",
    "IMTA_TEMPERATURE",
    "KLReduction",
    "LossKind",
    "MultiExitLoss",
    "multi_exit_cross_entropy",
    "self_distillation_loss",
]

LossKind = Literal["ce", "distill"]
"""Objectives selectable through :class:`MultiExitLoss`."""

KLReduction = Literal["batchmean", "mean"]
"""How the distillation KL term is averaged; see :func:`self_distillation_loss`."""

IMTA_TEMPERATURE = 3.0
"""Default distillation temperature ``T`` of IMTA's ``args.py`` (``-T``)."""

IMTA_GAMMA = 0.9
"""Default distillation weight ``gamma`` of IMTA's ``args.py`` (``--gamma``)."""

_LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
_KL_REDUCTIONS: tuple[str, ...] = get_args(KLReduction)


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


def _check_distillation(temperature: float, gamma: float, kl_reduction: str) -> None:
    """Raise unless ``temperature`` is finite and positive, ``gamma`` in ``[0, 1]`` and
    ``kl_reduction`` one of :data:`KLReduction`'s values."""
    require_fraction(
        "temperature",
        temperature,
        low=0.0,
        high=math.inf,
        low_inclusive=False,
        high_inclusive=False,
    )
    require_fraction("gamma", gamma, low=0.0, high=1.0, low_inclusive=True, high_inclusive=True)
    require_choice("kl_reduction", kl_reduction, _KL_REDUCTIONS)


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
    _check_distillation(temperature, gamma, kl_reduction)
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
        require_choice("kind", kind, _LOSS_KINDS)
        _check_distillation(temperature, gamma, kl_reduction)
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
