"""``RANet``: Resolution Adaptive Networks (Yang et al., CVPR 2020), built from adanet's blocks."""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

from torch import Tensor, nn

from adanet.blocks import ScaleBlock, ScaleBranch
from adanet.models.config_base import NetworkConfig
from adanet.models.network_base import ConfiguredNetwork
from adanet.models.plans import RANetPlan
from adanet.models.ranet_config import RANetConfig

__all__ = ["RANet"]


class RANet(ConfiguredNetwork[RANetConfig]):
    """A RANet: scale branches from the coarsest to the finest resolution, each fusing the
    features of the coarser one, with an exit after each of its last blocks.

    Exits are numbered as in the original: the coarsest branch's exits first. ``forward(x)``
    returns the list of every exit's logits; a sample leaving at exit ``k`` only pays for the
    branches and blocks up to it (see :func:`adanet.early_exit`). The layout comes from
    :meth:`RANetConfig.plan`.

    Args:
        config: The architecture.

    Attributes:
        config: The architecture.
        stem: Makes each scale's base feature.
        branches: One :class:`~adanet.ScaleBranch` per scale, coarsest first.
        exits: One :class:`~adanet.ExitHead` per exit (see
            :class:`~adanet.models.ConfiguredNetwork` for ``feature_info`` and
            ``pretrained_cfg``).
    """

    config_class: ClassVar[type[NetworkConfig]] = RANetConfig

    def _build(self, plan: RANetPlan) -> None:
        config = self.config
        layers = {"norm_layer": self._norm_layer, "activation_layer": self._activation_layer}
        self.stem = self._stem(plan.stem_channels, plan.stem_downsample)
        exit_at = {(e.scale, e.block): e for e in plan.exits}
        branches, heads = [], []
        for s, blocks in enumerate(plan.branches):
            branch = []
            for block in blocks:
                built = ScaleBlock(
                    block.in_channels,
                    block.num_layers,
                    block.growth_rate,
                    bottleneck_width=config.bottleneck_factors[s],
                    coarse_channels=block.coarse_channels,
                    coarse_bottleneck_width=config.bottleneck_factors[s - 1] if s > 0 else 1,
                    compress_factor=config.compress_factor,
                    downsample=block.downsample,
                    transition=block.transition,
                    reduction=config.reduction,
                    norm_first=not config.bn_after,
                    memory_efficient=config.memory_efficient,
                    **layers,
                )
                if built.out_channels != block.out_channels:
                    raise AssertionError("RANet plan out of step with the blocks built")
                branch.append(built)
                if (s, len(branch) - 1) in exit_at:
                    heads.append(self._exit_head(exit_at[(s, len(branch) - 1)]))
            branches.append(ScaleBranch(branch))
        self.branches = nn.ModuleList(branches)
        self._set_exits(heads, plan.exits)
        self._positions = tuple((e.scale, e.block) for e in plan.exits)
        self._init_weights()

    def _init_weights(self) -> None:
        # The original initialises the branches and heads this way and leaves the stem at
        # PyTorch's defaults; matching it keeps training runs comparable.
        for part in (self.branches, self.exits):
            for module in part.modules():
                if isinstance(module, nn.Conv2d):
                    fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                    nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.affine:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ early-exit protocol

    def begin(self, x: Tensor) -> dict[str, Any]:
        stem = self.stem(x)[::-1]  # coarsest first, one [N, C_s, H_s, W_s] per scale
        # "pending": base features of the finer branches, not yet started;
        # "coarse": per block, the features of the previous (coarser) branch, to fuse;
        # "features": per block so far, this branch's features, for the next branch.
        return {"x": stem[0], "pending": stem[1:], "coarse": [], "features": []}

    def advance(self, state: dict[str, Any], exit_index: int) -> tuple[Tensor, dict[str, Any]]:
        scale, last_block = self._positions[exit_index]
        previous = self._positions[exit_index - 1] if exit_index > 0 else None
        x: Tensor = state["x"]
        pending: list[Tensor] = state["pending"]
        coarse: list[list[Tensor]] = state["coarse"]
        features: list[list[Tensor]] = state["features"]
        if previous is None or previous[0] != scale:
            start = 0
            if previous is not None:  # the previous branch is complete: start the next one
                x, pending, coarse, features = pending[0], pending[1:], features, []
        else:
            start = previous[1] + 1
        branch = cast(ScaleBranch, self.branches[scale])
        keep_features = scale < len(self.branches) - 1  # the finest feeds nobody
        for b in range(start, last_block + 1):
            block = branch[b]
            x, block_features = block(x, coarse[b] if block.fused else None)
            if keep_features:
                features = [*features, block_features]
        if last_block + 1 >= branch.num_fused:
            coarse = []  # every fused block has run: the coarser features are not needed
        return x, {"x": x, "pending": pending, "coarse": coarse, "features": features}
