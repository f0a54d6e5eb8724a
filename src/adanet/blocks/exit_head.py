"""``ExitHead``: the classifier attached at an exit."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks._common import ActivationLayer, NormLayer, conv_norm_act
from adanet.blocks._shared_recompute import pieces_of, run_from_pieces

__all__ = ["ExitHead"]


class ExitHead(nn.Module):
    """Two strided 3×3 conv-norm-act layers, global average pooling and a linear layer.

    The original heads end in ``AvgPool2d(2)``, which only works when the map has shrunk to
    2×2 (the original input sizes); adaptive pooling gives the same result there and works at
    any size.

    Args:
        in_channels: Channels of the feature map the exit sees.
        num_classes: Output classes.
        hidden_channels: Width of the two convs (128 in the CIFAR heads; ``None`` keeps
            ``in_channels``, as the ImageNet heads do).
        norm_layer: Normalisation factory.
        activation_layer: Activation factory.

    Shape:
        ``[N, in_channels, H, W]`` → ``[N, num_classes]``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        hidden_channels: int | None = 128,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActivationLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        require_int("in_channels", in_channels, 1)
        require_int("num_classes", num_classes, 1)
        if hidden_channels is not None:
            require_int("hidden_channels", hidden_channels, 1)
        hidden = in_channels if hidden_channels is None else hidden_channels
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.convs = nn.Sequential(
            conv_norm_act(
                in_channels, hidden, 3, 2, norm_layer=norm_layer, activation_layer=activation_layer
            ),
            conv_norm_act(
                hidden, hidden, 3, 2, norm_layer=norm_layer, activation_layer=activation_layer
            ),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The logits, ``[N, num_classes]``; with ``pre_logits`` the pooled features the
        linear layer classifies, ``[N, hidden]``."""
        # The feature of a memory-efficient block remembers its channel pieces: saving those
        # instead of their concatenation keeps that copy out of backward's memory.
        pieces = pieces_of(x) if self.training and torch.is_grad_enabled() else [x]
        features = run_from_pieces(self.convs, pieces) if len(pieces) > 1 else self.convs(x)
        pooled = torch.flatten(self.pool(features), 1)  # [N, hidden]
        if pre_logits:
            return pooled
        logits: Tensor = self.classifier(pooled)  # [N, num_classes]
        return logits

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear layer by a fresh one with ``num_classes`` outputs (same device
        and dtype); the convolutions keep their weights.

        Raises:
            TypeError, ValueError: ``num_classes`` is not an int >= 1.
        """
        require_int("num_classes", num_classes, 1)
        old = self.classifier
        self.classifier = nn.Linear(
            old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )
        self.num_classes = num_classes
