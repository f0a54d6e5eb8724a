"""``StageNetwork``: a network whose exits are precompiled stages, behind the protocol.

Exported programs (:class:`adanet.deploy.stages.ExportedNetwork`) and ONNX Runtime sessions
(:class:`adanet.deploy.onnx.OnnxRuntimeNetwork`) both run one stage per exit: stage ``k``
takes the flat list of state tensors stage ``k - 1`` returned and gives exit ``k``'s logits
and the state after it. This base puts such stages behind adanet's early-exit protocol, so
:func:`adanet.early_exit`, ``forward`` and the evaluations drive them like the eager
network: the state is a flat list of batch-first tensors (compacted between exits by the
engine), each stage computes its own head so the protocol's heads are identities, the input
shape is the exported one, and costs are recorded rather than measured (operations inside a
compiled stage cannot be counted by module).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from typing_extensions import Self

from adanet._validation import check_costs
from adanet.models.early_exit_network import EarlyExitNetwork

__all__ = ["StageNetwork"]


class StageNetwork(EarlyExitNetwork):
    """Base of networks made of one precompiled stage per exit.

    Subclasses call ``super().__init__(num_stages, input_shape)`` and implement
    :meth:`advance`.

    Args:
        num_stages: Number of stages (exits).
        input_shape: ``(C, H, W)`` of the images the stages take.

    Attributes:
        input_shape: ``(C, H, W)`` of the images the stages take.
    """

    def __init__(self, num_stages: int, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.in_channels = self.input_shape[0]
        self.min_input_size = min(self.input_shape[1:])
        # The heads run inside the stages; the protocol's heads pass the logits through.
        self.exits = nn.ModuleList(nn.Identity() for _ in range(num_stages))
        self._known_costs: dict[str, list[float]] = {}
        self.training = False

    def register_costs(self, convention: str, costs: Sequence[float]) -> None:
        """Record the per-exit cumulative costs :func:`adanet.early_exit` charges under
        ``convention`` for this network's input size.

        Raises:
            TypeError, ValueError: Not one finite, non-negative, non-decreasing cost per exit.
        """
        self._known_costs[convention] = check_costs(costs, self.num_exits)

    def known_exit_costs(
        self, image_shape: tuple[int, ...], convention: str
    ) -> Sequence[float] | None:
        """The costs :meth:`register_costs` recorded, for the exported input size only."""
        if tuple(image_shape) != self.input_shape:
            return None
        return self._known_costs.get(convention)

    def check_input(self, x: Any) -> None:
        """The base checks, and images of exactly the exported ``(C, H, W)``.

        Raises:
            TypeError: Not a floating-point tensor of the stages' dtype.
            ValueError: Not ``[N, C, H, W]`` of the exported size, or on another device.
        """
        super().check_input(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"the stages were exported for images of {self.input_shape}, got "
                f"{tuple(x.shape[1:])}"
            )

    def begin(self, x: Tensor) -> list[Tensor]:
        """The state before exit 0: the images themselves."""
        return [x]

    @abstractmethod
    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        """Run stage ``exit_index`` on the state; returns its logits and the state after it."""

    def reset_classifier(self, num_classes: int) -> None:
        """Not possible: the heads are compiled into the stages.

        Raises:
            TypeError: Always.
        """
        raise TypeError(
            f"a {type(self).__name__}'s heads are compiled into its stages; re-head the torch "
            f"model and export it again (asked for {num_classes!r} classes)"
        )

    def train(self, mode: bool = True) -> Self:
        """Stay in eval mode whatever ``mode`` says: the stages hold BatchNorm's running
        statistics and have no training behaviour. (Exported programs refuse ``train()``
        altogether, so the flag is not passed down to the stages.)"""
        self.training = False
        return self
