"""``MSDNet``: Multi-Scale Dense Networks (Huang et al., ICLR 2018), built from adanet's blocks."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from adanet.blocks.multiscale_dense_layer import MultiScaleDenseLayer, MultiScaleTransition
from adanet.models.config_base import NetworkConfig
from adanet.models.msdnet_config import MSDNetConfig
from adanet.models.network_base import ConfiguredNetwork
from adanet.models.plans import LayerPlan, MSDNetPlan

__all__ = ["MSDNet"]


class MSDNet(ConfiguredNetwork[MSDNetConfig]):
    """An MSDNet: a stack of multi-scale dense layers that keep a feature map at every scale,
    each scale fed by itself and by the next finer one, with an exit after every block that
    classifies the coarsest scale.

    The finest scales are dropped as the network deepens (``config.prune``), each drop
    followed by a 1×1 transition. ``forward(x)`` returns the list of every exit's logits in
    block order; a sample leaving at exit ``k`` only pays for the blocks up to ``k`` (see
    :func:`adanet.early_exit`). The state between exits is the list of each active scale's
    current feature map, finest first.

    Unlike the original, the heads pool adaptively, so any image of at least
    :attr:`min_input_size` pixels works, and nothing is printed while building. The layout
    comes from :meth:`MSDNetConfig.plan`.

    Args:
        config: The architecture.

    Attributes:
        config: The architecture.
        stem: Makes each scale's base feature (the original's ``MSDNFirstLayer``).
        blocks: Per exit, an ``nn.Sequential`` of :class:`MultiScaleDenseLayer` and
            :class:`MultiScaleTransition` modules mapping the list of scale features to the
            next one.
    """

    config_class: ClassVar[type[NetworkConfig]] = MSDNetConfig

    def _build(self, plan: MSDNetPlan) -> None:
        config = self.config
        # Every scale halves the previous one.
        self.stem = self._stem(plan.stem_channels, [True] * config.num_scales)
        blocks: list[nn.Sequential] = []
        heads = []
        for exit_plan in plan.exits:
            modules = self._block_modules([p for p in plan.layers if p.block == exit_plan.block])
            blocks.append(nn.Sequential(*modules))
            heads.append(self._exit_head(exit_plan))
        self.blocks = nn.ModuleList(blocks)
        self._set_exits(heads, plan.exits)
        # No weight initialisation beyond PyTorch's defaults, on purpose: the original
        # defines a He-normal initialiser but applies it only to the direct children of each
        # block and head (MSDNFirstLayer, MSDNLayer, ParallelModule, ClassifierModule), none
        # of which is a conv, norm or linear layer, so its networks train from PyTorch's
        # defaults. Keeping them keeps training runs comparable with the original's.

    def _block_modules(self, layers: list[LayerPlan]) -> list[nn.Module]:
        # The dense layers of one block, each followed by its transition where planned.
        config = self.config
        factors = config.growth_factors
        scales = config.num_scales
        norm_act = {"norm_layer": self._norm_layer, "activation_layer": self._activation_layer}
        modules: list[nn.Module] = []
        for layer in layers:
            inputs = range(scales - layer.in_scales, scales)
            outputs = range(scales - layer.out_scales, scales)
            modules.append(
                MultiScaleDenseLayer(
                    [layer.in_channels * factors[s] for s in inputs],
                    [config.growth_rate * factors[s] for s in outputs],
                    bottleneck_widths=[config.bottleneck_factors[s] for s in inputs],
                    bottleneck=config.bottleneck,
                    memory_efficient=config.memory_efficient,
                    **norm_act,
                )
            )
            if layer.transition:
                grown = layer.in_channels + config.growth_rate
                modules.append(
                    MultiScaleTransition(
                        [grown * factors[s] for s in outputs],
                        [layer.out_channels * factors[s] for s in outputs],
                        **norm_act,
                    )
                )
        return modules

    # ------------------------------------------------------------------ early-exit protocol

    def begin(self, x: Tensor) -> list[Tensor]:
        # One [N, C_s, H / r_s, W / r_s] map per scale, finest first.
        features: list[Tensor] = self.stem(x)
        return features

    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        # The coarsest maps of block `exit_index`, finest first; the finest may be dropped.
        features: list[Tensor] = self.blocks[exit_index](state)
        return features[-1], features  # [N, C, H / r, W / r] at the coarsest scale
