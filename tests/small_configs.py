"""The small RANet and MSDNet configurations several test folders build: a few channels and
blocks, so a forward pass takes milliseconds, yet every kind of layer is present."""

from __future__ import annotations

from adanet import MSDNetConfig, RANetConfig

__all__ = ["SMALL_MSDNET", "SMALL_RANET"]

#: Two scales, one block each (RANet's layer names and shapes in little).
SMALL_RANET = RANetConfig(
    num_blocks=1,
    num_channels=4,
    growth_rate=4,
    growth_factors=(2, 1),
    bottleneck_factors=(2, 1),
    block_step=1,
    scale_list=(1, 2),
    step=1,
    num_classes=10,
)

#: Three scales, three exits, five classes.
SMALL_MSDNET = MSDNetConfig(
    num_blocks=3,
    base=2,
    step=1,
    num_channels=4,
    growth_rate=2,
    growth_factors=(1, 2, 2),
    bottleneck_factors=(1, 2, 2),
    num_classes=5,
)
