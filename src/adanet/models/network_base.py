"""``ConfiguredNetwork``: what RANet and MSDNet share — a config, exits built from its plan,
and fine-tuning that keeps the config true."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from torch import nn
from typing_extensions import Self

from adanet.blocks import ExitHead, MultiScaleStem
from adanet.blocks.norm_act import resolve_act, resolve_norm
from adanet.models.config_base import NetworkConfig
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.feature_info import FeatureInfo
from adanet.models.plans import ExitPlan
from adanet.models.pretrained_cfg import default_cfg_for

__all__ = ["ConfiguredNetwork"]

ConfigT = TypeVar("ConfigT", bound=NetworkConfig)


class ConfiguredNetwork(EarlyExitNetwork, Generic[ConfigT]):
    """An :class:`~adanet.EarlyExitNetwork` built from a frozen config.

    Subclasses set ``config_class`` and build their body from ``config.plan()``; this base
    builds the exit heads and :attr:`feature_info` from the plan's exits, and keeps
    ``config.num_classes`` equal to the heads' class count through :meth:`reset_classifier`.

    Args:
        config: The architecture, an instance of ``config_class``.

    Attributes:
        config: The architecture.
        exits: The exit heads, one :class:`~adanet.ExitHead` per exit.
        feature_info: Per exit, the channels, downsampling and module of the feature map its
            head sees (:class:`~adanet.FeatureInfo`, timm's semantics).
        pretrained_cfg: The preprocessing the originals use for this variant and class
            count (:class:`~adanet.PretrainedCfg`).

    Raises:
        TypeError: ``config`` is not a ``config_class``.
    """

    config_class: ClassVar[type[NetworkConfig]]
    config: ConfigT

    def __init__(self, config: ConfigT) -> None:
        # What every configured network sets first: the config (type-checked), the input
        # channels, the preprocessing, and the norm and activation factories.
        super().__init__()
        if not isinstance(config, self.config_class):
            article = "an" if self.config_class.__name__[0] in "AEIMO" else "a"
            raise TypeError(
                f"expected {article} {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.in_channels = config.in_channels
        self.pretrained_cfg = default_cfg_for(
            config.variant, config.num_classes, config.in_channels
        )
        self._norm_layer = resolve_norm(config.norm)
        self._activation_layer = resolve_act(config.act)
        self._build(config.plan())

    def _build(self, plan: Any) -> None:
        """Build the stem, the body and the heads from ``config.plan()``'s layout."""
        raise NotImplementedError

    def _stem(self, channels: Sequence[int], downsample: Sequence[bool]) -> MultiScaleStem:
        """The multi-scale stem, with the config's variant, norm and activation."""
        return MultiScaleStem(
            self.config.in_channels,
            channels,
            downsample,
            variant=self.config.variant,
            norm_layer=self._norm_layer,
            activation_layer=self._activation_layer,
        )

    def _exit_head(self, plan: ExitPlan) -> ExitHead:
        """The head of one planned exit (CIFAR heads are 128 wide, ImageNet ones as wide as
        their input).

        Subclasses build each head right after the block it follows, as the originals do,
        so that a seed gives the same initial weights as before.
        """
        return ExitHead(
            plan.in_channels,
            self.config.num_classes,
            hidden_channels=128 if self.config.variant == "cifar" else None,
            norm_layer=self._norm_layer,
            activation_layer=self._activation_layer,
        )

    def _set_exits(self, heads: Sequence[ExitHead], exits: Sequence[ExitPlan]) -> None:
        """Install the heads, and describe their inputs in :attr:`feature_info`."""
        self.exits = nn.ModuleList(heads)
        self.feature_info = FeatureInfo(
            [
                {
                    "num_chs": plan.in_channels,
                    "reduction": plan.downsampling,
                    "module": plan.module,
                    "exit": plan.index,
                }
                for plan in exits
            ]
        )
        # Below this size the deepest maps are smaller than 4 pixels before the exit heads'
        # two strided convs; the originals only run at 32 or 224.
        self.min_input_size = max(plan.downsampling for plan in exits) * 4

    @classmethod
    def from_config(cls, config: ConfigT | str) -> Self:
        """Build from a config or a preset name (see the config's ``preset_names()``).

        Raises:
            TypeError: Neither a config of this network nor a string.
            ValueError: An unknown preset name.
        """
        built: Any = cls.config_class.preset(config) if isinstance(config, str) else config
        return cls(built)

    def reset_classifier(self, num_classes: int) -> None:
        """Give every exit a fresh linear layer with ``num_classes`` outputs and set
        ``config.num_classes`` to it (the config is replaced: configs are frozen).

        Raises:
            TypeError, ValueError: ``num_classes`` is not an int >= 1.
        """
        super().reset_classifier(num_classes)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
