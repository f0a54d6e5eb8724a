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

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adanet._validation import require_int
from adanet.blocks.exit_head import ExitHead
from adanet.models.feature_info import FeatureInfo
from adanet.models.model_args import ModelArgs
from adanet.models.pretrained_cfg import PretrainedCfg, default_cfg_for
from adanet.models.walk import ExitWalk

__all__ = ["EarlyExitNetwork"]


def _detect_autocast_query() -> Any:
    # torch.is_autocast_enabled takes a device type from torch 2.4 on; before, it only
    # answered for CUDA and torch.is_autocast_cpu_enabled answered for the CPU.
    try:
        torch.is_autocast_enabled("cpu")
    except TypeError:
        return lambda device_type: (
            torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
        )
    return torch.is_autocast_enabled


_autocast_enabled = _detect_autocast_query()


class EarlyExitNetwork(nn.Module, ABC):
    """Base class of networks that run exit by exit.

    Subclasses set ``self.exits`` (an ``nn.ModuleList`` of heads, in exit order) and
    ``self.in_channels``, and implement :meth:`begin` and :meth:`advance`. They get
    ``forward`` (the list of every exit's logits), :meth:`forward_features`,
    :meth:`forward_head`, input validation, fine-tuning (:meth:`reset_classifier`,
    :meth:`get_classifier`), a :attr:`feature_info` and a :attr:`pretrained_cfg`, and work
    with :func:`adanet.early_exit`, :func:`adanet.measure_exit_costs` and the evaluation and
    training helpers.

    Heads are re-headed and read before their logits (``pre_logits``) when they are
    :class:`~adanet.ExitHead` modules or ``nn.Sequential`` modules ending in ``nn.Linear``;
    other heads need :meth:`reset_classifier` and :meth:`forward_head` overridden.

    Attributes:
        exits: The exit heads; ``exits[k]`` maps exit ``k``'s feature map to logits.
        in_channels: Channels the input must have.
        min_input_size: Smallest accepted image side.
    """

    exits: nn.ModuleList
    in_channels: int
    min_input_size: int = 1
    #: The registered name and arguments :func:`adanet.create_model` built this network with;
    #: ``None`` for a network built directly.
    model_args: ModelArgs | None = None

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

    def known_exit_costs(
        self, image_shape: tuple[int, ...], convention: str
    ) -> Sequence[float] | None:
        """Per-exit cumulative costs this network knows without being measured, or ``None``.

        :func:`adanet.early_exit` measures costs with :func:`adanet.measure_exit_costs`
        unless this gives them; a network whose computation cannot be counted (e.g. stages
        served by ONNX Runtime) returns the costs recorded for it instead.

        Args:
            image_shape: ``(C, H, W)`` of the images.
            convention: ``"actual"`` or ``"reference"``.
        """
        return None

    # ------------------------------------------------------------------------- input check

    def check_input(self, x: Any) -> None:
        """Raise a clear error unless ``x`` is a float batch this network accepts.

        The dtype and device must be the model's (its first floating-point parameter's),
        except under autocast, which casts for each operation. Values are not inspected:
        NaN or infinite pixels (which would cost a pass over the batch to find) go through
        the network and give NaN logits for those samples only, since every layer works per
        sample in eval mode.

        Raises:
            TypeError: Not a tensor, not floating point, or another dtype than the model's.
            ValueError: Wrong rank, channel count, device, or an image smaller than
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
        self._check_dtype_and_device(x)

    def _check_dtype_and_device(self, x: Tensor) -> None:
        weight = next((p for p in self.parameters() if p.is_floating_point()), None)
        if weight is None:
            return
        if x.device != weight.device:
            raise ValueError(
                f"the images are on {x.device} but the model is on {weight.device}: move "
                f"them with x.to({str(weight.device)!r})"
            )
        if x.dtype != weight.dtype and not _autocast_enabled(x.device.type):
            raise TypeError(
                f"the images are {x.dtype} but the model's parameters are {weight.dtype}: "
                f"convert with x.to({weight.dtype}), or run under torch.autocast"
            )

    # --------------------------------------------------------------------------- forward

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The feature map each exit sees, in exit order."""
        self.check_input(x)
        return list(ExitWalk(self, x).features())

    def forward_head(self, features: list[Tensor], pre_logits: bool = False) -> list[Tensor]:
        """Apply every exit head to its feature map.

        Args:
            features: :meth:`forward_features`' output.
            pre_logits: Return each head's pooled features (the input of its final linear
                layer) instead of its logits, as timm's ``forward_head``.

        Raises:
            ValueError: Not one feature map per exit.
            TypeError: ``pre_logits`` for a head that is neither an ``ExitHead`` nor an
                ``nn.Sequential`` ending in ``nn.Linear``.
        """
        if not isinstance(features, (list, tuple)) or len(features) != self.num_exits:
            got = len(features) if isinstance(features, (list, tuple)) else type(features).__name__
            raise ValueError(f"expected a list of {self.num_exits} feature maps, got {got}")
        if not pre_logits:
            return [head(feature) for head, feature in zip(self.exits, features, strict=True)]
        return [
            _pre_logits(k, head, feature)
            for k, (head, feature) in enumerate(zip(self.exits, features, strict=True))
        ]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Every exit's logits, in exit order: a list of ``[N, num_classes]`` tensors."""
        self.check_input(x)
        walk = ExitWalk(self, x)
        return [walk.head(feature) for feature in walk.features()]

    # ------------------------------------------------------------------------ fine-tuning

    def get_classifier(self) -> nn.ModuleList:
        """The exit heads, in exit order (``self.exits``): the modules a fine-tuning run
        often trains with their own learning rate."""
        return self.exits

    def reset_classifier(self, num_classes: int) -> None:
        """Give every exit a fresh final linear layer with ``num_classes`` outputs, to
        fine-tune on another dataset; everything else keeps its weights.

        Networks with a ``config`` (:class:`~adanet.RANet`, :class:`~adanet.MSDNet`) also
        update ``config.num_classes``.

        Raises:
            TypeError, ValueError: ``num_classes`` is not an int >= 1.
            TypeError: A head that is neither an ``ExitHead`` nor an ``nn.Sequential`` ending
                in ``nn.Linear`` (override this method for such heads).
        """
        require_int("num_classes", num_classes, 1)
        for k, head in enumerate(self.exits):
            _reset_head(k, head, num_classes)

    # ------------------------------------------------------------------ descriptions

    @property
    def pretrained_cfg(self) -> PretrainedCfg:
        """The preprocessing the model expects (input size, mean, std, resizing).

        Networks set it when they know their data; otherwise it defaults to the CIFAR-10
        statistics at 32×32 (mean and std 0.5 for other channel counts than 3). Assign a
        :class:`~adanet.PretrainedCfg` to change it. It is a read-only mapping with timm's
        data-config keys, so ``timm.data.resolve_model_data_config(model)`` reads it.
        """
        cfg = self.__dict__.get("_pretrained_cfg")
        if cfg is None:
            cfg = default_cfg_for("cifar", 10, self.in_channels)
        return cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: PretrainedCfg) -> None:
        if not isinstance(cfg, PretrainedCfg):
            raise TypeError(f"pretrained_cfg must be an adanet.PretrainedCfg, got {cfg!r}")
        self.__dict__["_pretrained_cfg"] = cfg

    @property
    def feature_info(self) -> FeatureInfo:
        """Per exit, the channels, downsampling and module of the feature map its head sees
        (:class:`~adanet.FeatureInfo`, timm's ``.channels()``, ``.reduction()``,
        ``.module_name()``).

        Networks that know their layout set it; otherwise it is measured once by running
        :meth:`forward_features` on a zero image of ``pretrained_cfg.input_size``, and each
        entry's module is ``"exits.k"`` (the input of head ``k``).
        """
        info = self.__dict__.get("_feature_info")
        if info is None:
            info = self._measure_feature_info()
            self.__dict__["_feature_info"] = info
        return info

    @feature_info.setter
    def feature_info(self, info: FeatureInfo) -> None:
        if not isinstance(info, FeatureInfo):
            raise TypeError(f"feature_info must be an adanet.FeatureInfo, got {info!r}")
        self.__dict__["_feature_info"] = info

    def _measure_feature_info(self) -> FeatureInfo:
        _, height, width = self.pretrained_cfg.input_size
        side = max(height, width, self.min_input_size)
        weight = next((p for p in self.parameters() if p.is_floating_point()), None)
        x = torch.zeros(
            1,
            self.in_channels,
            side,
            side,
            device=None if weight is None else weight.device,
            dtype=None if weight is None else weight.dtype,
        )
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                features = self.forward_features(x)
        finally:
            self.train(was_training)
        return FeatureInfo(
            [
                {
                    "num_chs": int(f.shape[1]),
                    "reduction": max(1, round(side / int(f.shape[-1]))),
                    "module": f"exits.{k}",
                }
                for k, f in enumerate(features)
            ]
        )


def _final_linear(k: int, head: nn.Module) -> nn.Linear:
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        return head[-1]
    raise TypeError(
        f"exit {k}'s head is a {type(head).__name__}, which adanet cannot re-head or read "
        "before its logits: use an adanet.ExitHead or an nn.Sequential ending in nn.Linear, "
        "or override reset_classifier and forward_head"
    )


def _reset_head(k: int, head: nn.Module, num_classes: int) -> None:
    if isinstance(head, ExitHead):
        head.reset_classifier(num_classes)
        return
    old = _final_linear(k, head)
    assert isinstance(head, nn.Sequential)  # _final_linear accepts nothing else
    head[-1] = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )


def _pre_logits(k: int, head: nn.Module, feature: Tensor) -> Tensor:
    if isinstance(head, ExitHead):
        pooled: Tensor = head(feature, pre_logits=True)
        return pooled
    _final_linear(k, head)
    assert isinstance(head, nn.Sequential)  # _final_linear accepts nothing else
    out: Tensor = head[:-1](feature)
    return out
