"""Tests of ``adanet.models.plans``: ``stem_downsampling`` and the plan records that
``RANetConfig.plan()`` and ``MSDNetConfig.plan()`` return. Two small plans are checked field
by field against layouts worked out by hand from the configs' rules; the presets and a few
other configs are checked for the properties every plan must have (one exit per configured
block, positive widths that chain from layer to layer, spatial downsampling that never
shrinks and doubles exactly where a layer downsamples)."""

from __future__ import annotations

import dataclasses

import pytest

from adanet import MSDNetConfig, RANetConfig
from adanet.models.plans import (
    ExitPlan,
    LayerPlan,
    MSDNetPlan,
    RANetBlockPlan,
    RANetPlan,
    stem_downsampling,
)

# ---------------------------------------------------------------------- stem_downsampling


@pytest.mark.parametrize(
    ("variant", "downsample", "expected"),
    [
        ("cifar", (False, True, True), (1, 2, 4)),
        ("cifar", (False, False, True), (1, 1, 2)),
        ("cifar", (False,), (1,)),
        ("imagenet", (False, True, True, True), (4, 8, 16, 32)),
        ("imagenet", (False, False, True, True), (4, 4, 8, 16)),
        # The first stem layer never downsamples beyond the variant's own stem.
        ("cifar", (True, True), (1, 2)),
        ("imagenet", (True,), (4,)),
        ("cifar", (), ()),
    ],
)
def test_stem_downsampling(
    variant: str, downsample: tuple[bool, ...], expected: tuple[int, ...]
) -> None:
    assert stem_downsampling(variant, downsample) == expected


# ------------------------------------------------------------------- a RANet plan by hand


def test_a_small_ranet_plan_matches_the_layout_worked_out_by_hand() -> None:
    # Defaults: 3 scales at levels (1, 2, 3), growth factors (4, 2, 1), 16 base channels,
    # growth rate 6, compress factor 0.25, reduction 0.5, CIFAR stem. Blocks per scale
    # 1 + s * 1 = (1, 2, 3), each with one layer.
    plan = RANetConfig(num_blocks=1, block_step=1, step=1).plan()
    assert isinstance(plan, RANetPlan)
    # The stem runs finest first: widths 16 * (1, 2, 4), striding where the level changes.
    assert plan.stem_channels == (16, 32, 64)
    assert plan.stem_downsample == (False, True, True)

    coarse, middle, fine = plan.branches
    # Scale 0 (growth 24): one unfused block, 64 + 24 = 88 channels, at 4x downsampling.
    assert coarse == (RANetBlockPlan(64, 1, 24, None, False, False, 88, 4),)
    # Scale 1 (growth 12) halves once, after the block where scale 0 ended (block 1), and
    # has a transition there: 32 + 12 = 44, + floor(44 / 4) = 55 fused, floor(55 / 2) = 27.
    assert middle == (
        RANetBlockPlan(32, 1, 12, (64, 88), True, True, 27, 4),
        RANetBlockPlan(27, 1, 12, None, False, False, 39, 4),
    )
    # Scale 2 (growth 6) halves after blocks 1 and 2 with transitions there:
    # 16 + 6 = 22 -> 27 -> 13, then 13 + 6 = 19 -> 23 -> 11, then 11 + 6 = 17.
    assert fine == (
        RANetBlockPlan(16, 1, 6, (32, 44), True, True, 13, 2),
        RANetBlockPlan(13, 1, 6, (27, 39), True, True, 11, 4),
        RANetBlockPlan(11, 1, 6, None, False, False, 17, 4),
    )
    assert plan.exits == (
        ExitPlan(0, 88, 4, "branches.0.blocks.0", 0, 0),
        ExitPlan(1, 39, 4, "branches.1.blocks.1", 1, 1),
        ExitPlan(2, 17, 4, "branches.2.blocks.2", 2, 2),
    )


def test_feature_channels_lists_the_input_and_every_layer_output_width() -> None:
    block = RANetBlockPlan(10, 3, 4, None, False, False, 22, 1)
    assert block.feature_channels == (10, 14, 18, 22)
    assert RANetBlockPlan(5, 0, 4, None, False, False, 5, 1).feature_channels == (5,)


def test_plans_are_frozen_records() -> None:
    plan = RANetConfig(num_blocks=1, block_step=1, step=1).plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.exits[0].in_channels = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stem_channels = ()  # type: ignore[misc]


# ------------------------------------------------------------------ RANet plan properties

RANET_CONFIGS = [
    *(pytest.param(RANetConfig.preset(name), id=name) for name in RANetConfig.preset_names()),
    pytest.param(RANetConfig(num_blocks=1, block_step=1, step=1), id="tiny"),
    pytest.param(RANetConfig(num_blocks=3, block_step=0, step=2, step_mode="lg"), id="lg"),
    pytest.param(
        RANetConfig(scale_list=(1, 1, 2), growth_factors=(2, 2, 1), bottleneck_factors=(2, 2, 1)),
        id="shared-level",
    ),
    pytest.param(
        RANetConfig(variant="imagenet", num_blocks=1, block_step=1, step=1), id="tiny-imagenet"
    ),
]


@pytest.mark.parametrize("config", RANET_CONFIGS)
def test_ranet_plan_has_one_branch_per_scale_and_one_exit_per_finest_block(
    config: RANetConfig,
) -> None:
    plan = config.plan()
    assert len(plan.branches) == len(plan.stem_channels) == len(config.scale_list)
    assert [len(blocks) for blocks in plan.branches] == list(config.blocks_per_scale)
    assert len(plan.exits) == config.num_exits == config.blocks_per_scale[-1]
    assert [e.index for e in plan.exits] == list(range(config.num_exits))
    # Branch s adds an exit for each block beyond those of the coarser branch.
    for s, count in enumerate(config.blocks_per_scale):
        first = config.blocks_per_scale[s - 1] if s else 0
        exits = [e for e in plan.exits if e.scale == s]
        assert [e.block for e in exits] == list(range(first, count))


@pytest.mark.parametrize("config", RANET_CONFIGS)
def test_ranet_plan_widths_are_positive_and_chain(config: RANetConfig) -> None:
    plan = config.plan()
    coarse_first = plan.stem_channels[::-1]
    for s, blocks in enumerate(plan.branches):
        growth = config.growth_rate * config.growth_factors[s]
        width = config.num_channels * config.growth_factors[s]
        assert width == coarse_first[s]
        for b, block in enumerate(blocks):
            assert block.in_channels == width
            assert block.growth_rate == growth
            assert block.num_layers == config.layers_per_block[b]
            assert block.out_channels >= 1
            if not block.transition:  # only a transition may make a block narrower
                assert block.out_channels >= block.in_channels + block.num_layers * growth
            width = block.out_channels


@pytest.mark.parametrize("config", RANET_CONFIGS)
def test_ranet_plan_fuses_each_coarser_block_once(config: RANetConfig) -> None:
    plan = config.plan()
    assert all(block.coarse_channels is None for block in plan.branches[0])
    for coarser, finer in zip(plan.branches, plan.branches[1:], strict=False):
        fused = [block.coarse_channels for block in finer[: len(coarser)]]
        assert fused == [block.feature_channels for block in coarser]
        assert all(block.coarse_channels is None for block in finer[len(coarser) :])


@pytest.mark.parametrize("config", RANET_CONFIGS)
def test_ranet_plan_downsampling_never_shrinks_and_exits_sit_at_the_coarsest(
    config: RANetConfig,
) -> None:
    plan = config.plan()
    assert plan.stem_downsample[0] is False
    stem = stem_downsampling(config.variant, plan.stem_downsample)
    assert list(stem) == sorted(stem)  # finest first, so never smaller
    coarsest = stem[-1]
    for s, blocks in enumerate(plan.branches):
        factor = stem[::-1][s]
        for block in blocks:
            factor *= 2 if block.downsample else 1
            assert block.downsampling == factor
            assert not block.downsample or block.coarse_channels is not None
    # Every exit classifies a map at the coarsest resolution.
    for e in plan.exits:
        block = plan.branches[e.scale][e.block]
        assert (e.in_channels, e.downsampling) == (block.out_channels, block.downsampling)
        assert e.downsampling == coarsest
        assert e.module == f"branches.{e.scale}.blocks.{e.block}"


# ----------------------------------------------------------------- an MSDNet plan by hand


def test_a_small_msdnet_plan_matches_the_layout_worked_out_by_hand() -> None:
    # Defaults: growth factors (1, 2, 4), 16 base channels, growth rate 6, prune "max",
    # reduction 0.5, CIFAR stem. Layers per block (2, 1, 1): 4 layers, so each of the
    # 3 scales lasts ceil(4 / 3) = 2 layers; the finest is dropped at layer 3.
    plan = MSDNetConfig(num_blocks=3, base=2, step=1).plan()
    assert isinstance(plan, MSDNetPlan)
    assert plan.stem_channels == (16, 32, 64)
    assert plan.layers == (
        LayerPlan(
            block=0, in_scales=3, out_scales=3, in_channels=16, transition=False, out_channels=22
        ),
        LayerPlan(
            block=0, in_scales=3, out_scales=3, in_channels=22, transition=False, out_channels=28
        ),
        # 28 + 6 = 34, halved by the transition.
        LayerPlan(
            block=1, in_scales=3, out_scales=2, in_channels=28, transition=True, out_channels=17
        ),
        LayerPlan(
            block=2, in_scales=2, out_scales=2, in_channels=17, transition=False, out_channels=23
        ),
    )
    # Exits read the coarsest scale (factor 4) at 4x downsampling.
    assert plan.exits == (
        ExitPlan(0, 28 * 4, 4, "blocks.0", 2, 0),
        ExitPlan(1, 17 * 4, 4, "blocks.1", 2, 1),
        ExitPlan(2, 23 * 4, 4, "blocks.2", 2, 2),
    )


# ----------------------------------------------------------------- MSDNet plan properties

MSDNET_CONFIGS = [
    *(pytest.param(MSDNetConfig.preset(name), id=name) for name in MSDNetConfig.preset_names()),
    pytest.param(MSDNetConfig(num_blocks=3, base=2, step=1), id="small"),
    pytest.param(
        MSDNetConfig(num_blocks=4, base=1, step=2, step_mode="lin_grow", prune="min"),
        id="lin-grow-prune-min",
    ),
    pytest.param(MSDNetConfig(num_blocks=2, base=1, step=1, reduction=0.0), id="no-transition"),
    pytest.param(
        MSDNetConfig(growth_factors=(3,), bottleneck_factors=(1,), growth_rate=3, num_blocks=2),
        id="one-scale",
    ),
]


@pytest.mark.parametrize("config", MSDNET_CONFIGS)
def test_msdnet_plan_has_one_exit_per_block_and_the_configured_layers(
    config: MSDNetConfig,
) -> None:
    plan = config.plan()
    assert len(plan.exits) == config.num_blocks == config.num_exits
    assert [e.index for e in plan.exits] == [e.block for e in plan.exits]
    assert [e.block for e in plan.exits] == list(range(config.num_blocks))
    assert len(plan.layers) == config.num_layers
    per_block = [sum(1 for p in plan.layers if p.block == b) for b in range(config.num_blocks)]
    assert per_block == list(config.layers_per_block)
    assert [p.block for p in plan.layers] == sorted(p.block for p in plan.layers)
    assert plan.stem_channels == tuple(config.num_channels * f for f in config.growth_factors)


@pytest.mark.parametrize("config", MSDNET_CONFIGS)
def test_msdnet_plan_widths_are_positive_and_chain(config: MSDNetConfig) -> None:
    plan = config.plan()
    width = config.num_channels
    for p in plan.layers:
        assert p.in_channels == width >= 1
        assert p.out_channels >= 1
        if not p.transition:
            assert p.out_channels == p.in_channels + config.growth_rate
        width = p.out_channels
    for e in plan.exits:
        last = [p for p in plan.layers if p.block == e.block][-1]
        assert e.in_channels == last.out_channels * config.growth_factors[-1]


@pytest.mark.parametrize("config", MSDNET_CONFIGS)
def test_msdnet_plan_scales_only_shrink_and_exits_sit_at_the_coarsest(
    config: MSDNetConfig,
) -> None:
    plan = config.plan()
    scales = config.num_scales
    assert plan.layers[0].in_scales == scales
    for p in plan.layers:
        assert 1 <= p.out_scales <= p.in_scales <= scales
        assert p.in_scales - p.out_scales <= 1
    for before, after in zip(plan.layers, plan.layers[1:], strict=False):
        assert after.in_scales == before.out_scales
    coarsest = stem_downsampling(config.variant, (True,) * scales)[-1]
    assert coarsest == (1 if config.variant == "cifar" else 4) * 2 ** (scales - 1)
    for e in plan.exits:
        assert (e.scale, e.downsampling, e.module) == (scales - 1, coarsest, f"blocks.{e.block}")
