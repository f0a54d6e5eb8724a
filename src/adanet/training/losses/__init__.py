"""Training losses for multi-exit (early-exit) networks.

A multi-exit model's ``forward(x)`` returns one logits tensor ``[N, classes]`` per exit,
ordered from the cheapest (earliest) exit to the final one. These modules turn that list into
a scalar training loss:

* :mod:`~adanet.training.losses.objectives`: :func:`multi_exit_cross_entropy` (the
  RANet/MSDNet objective: a weighted sum over exits of the batch-mean cross-entropy; with
  ``weights=None`` the plain sum of the original training scripts),
  :func:`self_distillation_loss` (IMTA's one-for-all self-distillation from the final exit,
  Li et al., "Improved Techniques for Training Adaptive Deep Networks", ICCV 2019) and
  :class:`MultiExitLoss`, an ``nn.Module`` selecting between the two (a ``--loss ce|distill``
  flag).
* :mod:`~adanet.training.losses.weighting`: :func:`exit_weights` (named per-exit weighting
  schemes) and :func:`resolve_weights` (validation of user-supplied weight lists).
* :mod:`~adanet.training.losses.equilibrium`: IMTA's Gradient Equilibrium
  (:func:`gradient_rescale`, :func:`equilibrium_scale`, :func:`equilibrium_exit`), which
  rescales the gradients that meet at each exit's branching point.
"""

from adanet.training.losses.equilibrium import (
    GradientRescale,
    equilibrium_exit,
    equilibrium_scale,
    gradient_rescale,
)
from adanet.training.losses.objectives import (
    IMTA_GAMMA,
    IMTA_TEMPERATURE,
    KLReduction,
    LossKind,
    MultiExitLoss,
    multi_exit_cross_entropy,
    self_distillation_loss,
)
from adanet.training.losses.weighting import WeightScheme, exit_weights, resolve_weights

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
