"""``optimize_for_inference``: an equivalent, faster copy of a network for evaluation."""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .protocol import EarlyExitNetwork

__all__ = ["optimize_for_inference"]

Network = TypeVar("Network", bound=EarlyExitNetwork)


def _fold_batch_norms(module: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a Conv2d in a Sequential into the conv."""
    folded = 0
    for child in list(module.children()):
        folded += _fold_batch_norms(child)
    if isinstance(module, nn.Sequential):
        index = 0
        while index < len(module) - 1:
            conv, norm = module[index], module[index + 1]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and norm.running_mean is not None
            ):
                module[index] = fuse_conv_bn_eval(conv, norm)
                del module[index + 1]
                folded += 1
            index += 1
    return folded


def optimize_for_inference(
    model: Network, *, memory_format: torch.memory_format | None = None
) -> Network:
    """Return an equivalent copy of ``model`` for evaluation.

    The copy is in eval mode without gradients; every BatchNorm that follows a convolution is
    folded into it (conv-norm-act becomes conv-act; pre-activation norms stay), and its
    parameters use ``memory_format``. Outputs equal the original's up to float rounding. The
    copy follows the same early-exit protocol, so :func:`adanet.early_exit` and
    :func:`adanet.measure_exit_costs` work on it (the latter then counts no normalisation:
    the folded model really does less). The original model is not modified.

    Args:
        model: The trained network.
        memory_format: Memory format of the conv weights; by default
            ``torch.channels_last`` on CUDA (faster convolutions there) and the contiguous
            format on the CPU, where channels-last is slower for these networks.

    Returns:
        The optimized copy.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"optimize_for_inference needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    optimized = copy.deepcopy(model).eval()
    _fold_batch_norms(optimized)
    optimized.requires_grad_(False)
    if memory_format is None:
        parameter = next(optimized.parameters(), None)
        on_cuda = parameter is not None and parameter.device.type == "cuda"
        memory_format = torch.channels_last if on_cuda else torch.contiguous_format
    return optimized.to(memory_format=memory_format)
