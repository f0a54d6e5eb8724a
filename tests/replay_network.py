"""A network that serves given logits, so early exit can be compared bit for bit with a replay.

Image ``i`` is a 1x1 pixel holding ``i``; exit ``k`` answers ``logits[k, i]``. Its logits do
not depend on which other samples are in the batch (a real network's may differ in the last
ulp between batch sizes), so ``early_exit`` on it must decide exactly as a policy's
``simulate`` on the same logits, with no tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adanet import EarlyExitNetwork

__all__ = ["ReplayNetwork"]


class _Lookup(nn.Module):
    def __init__(self, table: Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table.clone())

    def forward(self, index: Tensor) -> Tensor:
        table: Tensor = self.table
        return table[index]


class ReplayNetwork(EarlyExitNetwork):
    """Serves ``logits[k, i]`` at exit ``k`` for image ``i`` (see the module docstring).

    Args:
        logits: ``[exits, N, classes]``.
        costs: Cumulative cost of each exit, reported as the network's known costs.
    """

    def __init__(self, logits: Tensor, costs: Sequence[float]) -> None:
        super().__init__()
        self.in_channels = 1
        self.exits = nn.ModuleList(_Lookup(logits[k]) for k in range(logits.shape[0]))
        self._costs = [float(c) for c in costs]

    def begin(self, x: Tensor) -> Any:
        return x[:, 0, 0, 0].round().long()

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        return state, state

    def known_exit_costs(self, image_shape: tuple[int, ...], convention: str) -> list[float]:
        return list(self._costs)

    @staticmethod
    def images(index: Tensor | range) -> Tensor:
        """The images that stand for the samples ``index``."""
        positions = torch.as_tensor(list(index) if isinstance(index, range) else index)
        return positions.to(torch.float32).view(-1, 1, 1, 1)
