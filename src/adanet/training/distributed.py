"""Small helpers for ``torchrun`` / DistributedDataParallel runs.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
for every process; :func:`init_distributed` reads them (through the ``env://`` rendezvous), so
single-node and multi-node launches need no extra flags. Without those variables (or with
``WORLD_SIZE=1``) everything here degrades to a single process and no process group is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistributedContext",
    "all_reduce_sum",
    "barrier",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs.

    Attributes:
        rank: Global rank (0 in a single-process run).
        local_rank: Rank on this node; picks the CUDA device.
        world_size: Number of processes.
        device: The device this process trains on.
        backend: ``"nccl"``, ``"gloo"``, or ``None`` when no process group was made.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one process is in use."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only process that writes files and prints."""
        return self.rank == 0


def is_distributed() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank, 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes, 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def init_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    NCCL is used when the process trains on CUDA, gloo otherwise. Each process takes the CUDA
    device ``LOCAL_RANK``.

    Args:
        device: Force a device type (``"cpu"`` or ``"cuda"``); by default CUDA when available.

    Returns:
        The context of this process.

    Raises:
        RuntimeError: ``device`` asks for CUDA but none is available.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = torch.device(device) if device is not None else None
    use_cuda = torch.cuda.is_available() if wanted is None else wanted.type == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    if use_cuda:
        index = local_rank % max(1, torch.cuda.device_count())
        chosen = torch.device("cuda", index)
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if world_size <= 1:
        return DistributedContext(0, 0, 1, chosen, None)
    backend = "nccl" if use_cuda else "gloo"
    if not is_distributed():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistributedContext(dist.get_rank(), local_rank, dist.get_world_size(), chosen, backend)


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process; a no-op without a process group."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all processes in place (a no-op without a process group).

    Returns:
        ``tensor``.
    """
    if is_distributed() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
