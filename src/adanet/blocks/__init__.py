"""Composable building blocks of multi-resolution early-exit networks."""

from ._common import ActivationLayer, NormLayer, bottleneck_conv, conv_norm_act, resize_to
from .dense_layer import DenseLayer
from .exit_head import ExitHead
from .fusion_block import FusionBlock
from .multiscale_dense_layer import CrossScaleDenseUnit, MultiScaleDenseLayer, MultiScaleTransition
from .scale_branch import ScaleBlock, ScaleBranch
from .stem import MultiScaleStem

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
