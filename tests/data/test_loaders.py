"""adanet.data.loaders: seeded, repeatable and distributed data loaders over the digits."""

from __future__ import annotations

import pytest
import torch

from adanet.data import (
    DataSplits,
    build_loaders,
    digits_datasets,
)

pytest.importorskip("sklearn")


def test_build_loaders(digits: DataSplits) -> None:
    loaders = build_loaders(digits, batch_size=64, workers=0, seed=0)
    train, val, test = loaders
    assert val is not None
    x, y = next(iter(train))
    assert x.shape == (64, 3, 32, 32) and y.shape == (64,) and y.dtype == torch.int64
    assert len(val.dataset) == 359  # type: ignore[arg-type]
    # Evaluation order is the dataset order.
    xs, ys = next(iter(test))
    torch.testing.assert_close(xs[0], digits.test[0][0])
    assert int(ys[0]) == digits.test[0][1]
    # The seeded generator makes the shuffling repeatable.
    order_a = next(iter(build_loaders(digits, 64, 0, seed=5).train))[1]
    order_b = next(iter(build_loaders(digits, 64, 0, seed=5).train))[1]
    torch.testing.assert_close(order_a, order_b)


def test_build_loaders_workers_repeatable(digits: DataSplits) -> None:
    # With worker processes the seeded generator also fixes the augmentation.
    first = [next(iter(build_loaders(digits, 64, 2, seed=7).train)) for _ in range(2)]
    torch.testing.assert_close(first[0][0], first[1][0])
    torch.testing.assert_close(first[0][1], first[1][1])


def test_build_loaders_distributed(digits: DataSplits) -> None:
    loaders = build_loaders(digits, 32, 0, distributed=True, num_replicas=2, rank=1)
    sampler = loaders.train.sampler
    assert isinstance(sampler, torch.utils.data.DistributedSampler)
    assert len(sampler) == 540  # ceil(1079 / 2)
    assert loaders.val is not None and len(loaders.val.sampler) == 359  # type: ignore[arg-type]
    sharded = build_loaders(
        digits, 32, 0, distributed=True, num_replicas=2, rank=1, shard_eval=True
    )
    assert sharded.val is not None and len(sharded.val.sampler) == 180  # type: ignore[arg-type]


def test_build_loaders_errors_and_missing_val() -> None:
    splits = digits_datasets(use_valid=False)
    assert build_loaders(splits, 8, 0).val is None
    with pytest.raises(ValueError, match="batch_size"):
        build_loaders(splits, 0, 0)
    with pytest.raises(ValueError, match="workers"):
        build_loaders(splits, 8, -1)
