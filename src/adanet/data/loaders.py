"""Data loaders over a dataset's splits, single-process or sharded for DDP."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from adanet._validation import require_int
from adanet.data.views import DataLoaders, DataSplits, Sample

__all__ = ["build_loaders"]


def build_loaders(
    splits: DataSplits,
    batch_size: int,
    workers: int,
    distributed: bool = False,
    seed: int = 0,
    *,
    shard_eval: bool = False,
    pin_memory: bool | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoaders:
    """Wraps the splits in data loaders.

    The training loader shuffles with a generator seeded by ``seed``. With ``workers > 0`` that
    generator also seeds the worker processes' torch RNGs, so the augmentation is repeatable
    too; with ``workers == 0`` augmentation draws from the global torch RNG (seed it with
    :func:`torch.manual_seed`). With ``distributed=True`` it uses a
    :class:`~torch.utils.data.DistributedSampler` instead; call ``loader.sampler.set_epoch(epoch)``
    every epoch so each epoch is shuffled differently. Validation and test loaders keep the
    dataset order. By default they are *not* sharded even when distributed, so every rank
    evaluates the full set and per-sample results (needed for dynamic-evaluation thresholds)
    stay exact; ``shard_eval=True`` shards them with a non-shuffling ``DistributedSampler``,
    which pads the last shard by repeating a few samples.

    Args:
        splits: The datasets.
        batch_size: Per-process batch size.
        workers: Number of loader worker processes (0 loads in the main process).
        distributed: Shard the training set across processes.
        seed: Shuffling seed.
        shard_eval: Also shard validation/test when distributed.
        pin_memory: Pin host memory; defaults to whether CUDA is available.
        num_replicas: Passed to ``DistributedSampler`` (default: the process group's size).
        rank: Passed to ``DistributedSampler`` (default: this process's rank).

    Returns:
        ``DataLoaders(train, val, test)``; ``val`` is ``None`` when ``splits.val`` is.

    Raises:
        TypeError, ValueError: If ``batch_size`` is not an int >= 1 or ``workers`` not an
            int >= 0.
    """
    require_int("batch_size", batch_size, 1)
    require_int("workers", workers, 0)
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": workers,
        "pin_memory": pin,
        "persistent_workers": workers > 0,
    }

    generator = torch.Generator().manual_seed(seed)
    if distributed:
        train_sampler: DistributedSampler[Sample] = DistributedSampler(
            splits.train, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        train = DataLoader(splits.train, sampler=train_sampler, generator=generator, **common)
    else:
        train = DataLoader(splits.train, shuffle=True, generator=generator, **common)

    def eval_loader(dataset: Dataset[Sample]) -> DataLoader[Sample]:
        if distributed and shard_eval:
            sampler: DistributedSampler[Sample] = DistributedSampler(
                dataset, num_replicas=num_replicas, rank=rank, shuffle=False
            )
            return DataLoader(dataset, sampler=sampler, **common)
        return DataLoader(dataset, shuffle=False, **common)

    val = None if splits.val is None else eval_loader(splits.val)
    return DataLoaders(train=train, val=val, test=eval_loader(splits.test))
