"""Composable building blocks of multi-resolution early-exit networks."""

from adanet.blocks._common import (
    ActivationLayer,
    NormLayer,
    bottleneck_conv,
    conv_norm_act,
    resize_to,
)
from adanet.blocks.dense_layer import DenseLayer
from adanet.blocks.exit_head import ExitHead
from adanet.blocks.fusion_block import FusionBlock
from adanet.blocks.multiscale_dense_layer import (
    CrossScaleDenseUnit,
    MultiScaleDenseLayer,
    MultiScaleTransition,
)
from adanet.blocks.scale_branch import ScaleBlock, ScaleBranch
from adanet.blocks.stem import MultiScaleStem

__all__ = [
    "ActivationLayer",
    "CrossScaleDenseUnit",
    "DenseLayer",
    "ExitHead",
    "FusionBlock",
    "MultiScaleDenseLayer",
    "MultiScaleStem",
    "MultiScaleTransition",
    "NormLayer",
    "ScaleBlock",
    "ScaleBranch",
    "bottleneck_conv",
    "conv_norm_act",
    "resize_to",
]
