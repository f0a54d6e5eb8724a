"""The early-exit protocol that every adanet network follows.

A network is split at its exits. :meth:`EarlyExitNetwork.begin` turns the input into a
*state*; :meth:`EarlyExitNetwork.advance` carries the state up to exit ``k`` and returns the
feature map that exit ``k``'s head (``exits[k]``) classifies. Between two exits a caller may
drop samples: :func:`select_samples` keeps the chosen rows of every tensor in the state, so
the network goes on with the remaining samples only. ``forward`` (all exits),
:func:`adanet.early_exit` and :func:`adanet.measure_exit_costs` all drive the network through
these two methods, so they cannot disagree.

A state is any nesting of lists, tuples, dicts and dataclasses whose tensors are batch-first;
other values (ints, strings, ``None``) are carried along unchanged.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["EarlyExitNetwork", "select_samples"]


def select_samples(state: Any, index: Tensor) -> Any:
    """Keep the samples ``index`` (a 1-D int64 tensor) of every tensor in ``state``.

    Args:
        state: A nesting of lists, tuples, dicts and dataclasses with batch-first tensors.
        index: Positions of the samples to keep, on the tensors' device.

    Returns:
        A state of the same structure holding only those samples.
    """
    if isinstance(state, Tensor):
        return state.index_select(0, index)
    if isinstance(state, list):
        return [select_samples(item, index) for item in state]
    if isinstance(state, tuple):
        items = [select_samples(item, index) for item in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    if isinstance(state, dict):
        return {key: select_samples(value, index) for key, value in state.items()}
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        changes = {
            field.name: select_samples(getattr(state, field.name), index)
            for field in dataclasses.fields(state)
            if field.init
        }
        return dataclasses.replace(state, **changes)
    return state


class EarlyExitNetwork(nn.Module, ABC):
    """Base class of networks that run exit by exit.

    Subclasses set ``self.exits`` (an ``nn.ModuleList`` of heads, in exit order) and
    ``self.in_channels``, and implement :meth:`begin` and :meth:`advance`. They get
    ``forward`` (the list of every exit's logits), :meth:`forward_features`,
    :meth:`forward_head`, input validation, and work with :func:`adanet.early_exit`,
    :func:`adanet.measure_exit_costs` and the evaluation and training helpers.

    Attributes:
        exits: The exit heads; ``exits[k]`` maps exit ``k``'s feature map to logits.
        in_channels: Channels the input must have.
        min_input_size: Smallest accepted image side.
    """

    exits: nn.ModuleList
    in_channels: int
    min_input_size: int = 1

    @property
    def num_exits(self) -> int:
        """Number of exits."""
        return len(self.exits)

    @abstractmethod
    def begin(self, x: Tensor) -> Any:
        """Start the computation: turn a batch into the initial state.

        Args:
            x: ``[N, in_channels, H, W]``, already validated.
        """

    @abstractmethod
    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        """Carry ``state`` from exit ``exit_index - 1`` (or from :meth:`begin`) to exit
        ``exit_index``.

        Called with ``exit_index`` = 0, 1, … in order; the state may have fewer samples than
        the previous call returned (those that left were removed with
        :func:`select_samples`).

        Returns:
            The feature map that ``exits[exit_index]`` classifies, and the new state.
        """

    def check_input(self, x: Any) -> None:
        """Raise a clear error unless ``x`` is a float batch this network accepts.

        Raises:
            TypeError: Not a tensor, or not floating point.
            ValueError: Wrong rank, channel count, or an image smaller than
                ``min_input_size``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(
                f"expected a batch of images shaped [N, C, H, W], got shape {tuple(x.shape)}" + hint
            )
        if not torch.is_floating_point(x):
            raise TypeError(
                f"expected floating-point images, got dtype {x.dtype} (convert with "
                "x.float() / 255 and normalise as in training)"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        height, width = int(x.shape[2]), int(x.shape[3])
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"images of {height}x{width} are too small for this network: each side must "
                f"be at least {self.min_input_size}"
            )
        if x.shape[0] == 0:
            raise ValueError("expected at least one image, got an empty batch")

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The feature map each exit sees, in exit order."""
        self.check_input(x)
        state = self.begin(x)
        features = []
        for k in range(self.num_exits):
            feature, state = self.advance(state, k)
            features.append(feature)
        return features

    def forward_head(self, features: list[Tensor]) -> list[Tensor]:
        """Apply every exit head to its feature map."""
        if len(features) != self.num_exits:
            raise ValueError(f"expected {self.num_exits} feature maps, got {len(features)}")
        return [head(feature) for head, feature in zip(self.exits, features, strict=True)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Every exit's logits, in exit order: a list of ``[N, num_classes]`` tensors."""
        self.check_input(x)
        state = self.begin(x)
        logits = []
        for k, head in enumerate(self.exits):
            feature, state = self.advance(state, k)
            logits.append(head(feature))
        return logits
