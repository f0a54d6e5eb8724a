"""``ExitWalk``: the one loop that carries a batch through a network's exits, in order.

A network following adanet's protocol is driven by :meth:`begin` once and :meth:`advance`
for exit 0, 1, …; between two exits the batch may shrink (:meth:`ExitWalk.keep`). Every
place that runs a network exit by exit goes through this class: ``forward``, early exit,
the static run to one exit, cost counting, export probing and int8 calibration. It does not
apply the heads; the caller decides which heads to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from torch import Tensor, nn

from adanet.models.state import select_samples

__all__ = ["ExitWalk", "SteppedNetwork"]


class SteppedNetwork(Protocol):
    """What a walk needs of a network: the two methods of the protocol and its heads."""

    exits: nn.ModuleList

    def begin(self, x: Tensor) -> Any: ...

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]: ...


class ExitWalk:
    """One batch's way through a network's exits.

    Args:
        network: The network (an :class:`~adanet.EarlyExitNetwork`, or anything with
            ``begin``, ``advance`` and ``exits``).
        x: ``[N, C, H, W]`` images, already checked by the caller.

    Attributes:
        state: The state after the last exit reached (or after ``begin``).
        next_exit: The exit :meth:`advance` goes to next.
    """

    def __init__(self, network: SteppedNetwork, x: Tensor) -> None:
        self.network = network
        self.state: Any = network.begin(x)
        self.next_exit = 0

    @property
    def num_exits(self) -> int:
        """The network's number of exits."""
        return len(self.network.exits)

    @property
    def done(self) -> bool:
        """Whether the last exit has been reached."""
        return self.next_exit >= self.num_exits

    def advance(self) -> Tensor:
        """Go on to the next exit.

        Returns:
            The feature map that exit's head classifies.

        Raises:
            IndexError: The walk is past the last exit.
        """
        if self.done:
            raise IndexError(f"the walk already reached the last of {self.num_exits} exits")
        feature, self.state = self.network.advance(self.state, self.next_exit)
        self.next_exit += 1
        return feature

    def head(self, feature: Tensor) -> Tensor:
        """The logits of the exit just reached, from its ``feature``.

        Raises:
            IndexError: No exit has been reached yet.
        """
        if self.next_exit == 0:
            raise IndexError("head() classifies the exit just reached; call advance() first")
        logits: Tensor = self.network.exits[self.next_exit - 1](feature)
        return logits

    def keep(self, index: Tensor) -> None:
        """Carry on with the samples ``index`` (positions in the current batch) only."""
        self.state = select_samples(self.state, index)

    def features(self) -> Iterator[Tensor]:
        """The feature map of every remaining exit, in order."""
        while not self.done:
            yield self.advance()
