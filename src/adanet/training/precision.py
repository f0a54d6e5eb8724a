"""Precision settings of a run in one object: autocast dtype, gradient scaler, channels-last."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from adanet._validation import require_choice

__all__ = ["AmpName", "Precision", "make_grad_scaler"]

AmpName = Literal["bf16", "fp16"]
"""Autocast choices of the command line (``--amp``)."""

_AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_grad_scaler(device_type: str = "cuda") -> Any:
    """A gradient scaler for float16 autocast on ``device_type``.

    ``torch.amp.GradScaler(device)`` appeared in torch 2.3; older releases only have the
    CUDA-specific ``torch.cuda.amp.GradScaler`` (deprecated since 2.4), used as the fallback.
    """
    device_agnostic = getattr(torch.amp, "GradScaler", None)
    if device_agnostic is not None:
        return device_agnostic(device_type)
    if device_type != "cuda":  # pragma: no cover - torch < 2.3 only
        raise ValueError(f"this torch has a gradient scaler for CUDA only, not {device_type!r}")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - torch < 2.3 only


@dataclass(frozen=True)
class Precision:
    """How a training or evaluation step runs numerically.

    Attributes:
        amp_dtype: Autocast dtype (``torch.bfloat16`` or ``torch.float16``), or ``None`` for
            full precision.
        scaler: A gradient scaler (float16 autocast needs one); stateful, saved in checkpoints.
        channels_last: Feed images in channels-last memory format.
    """

    amp_dtype: torch.dtype | None = None
    scaler: Any = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(
                f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {self.amp_dtype!r}"
            )

    @classmethod
    def create(
        cls, amp: AmpName | None, device: torch.device | str, *, channels_last: bool = False
    ) -> Precision:
        """The settings for ``--amp`` on ``device``, with a scaler when float16 needs one.

        Raises:
            ValueError: An unknown ``amp`` name, or float16 on a device other than CUDA.
        """
        if amp is None:
            return cls(channels_last=channels_last)
        require_choice("amp", amp, sorted(_AMP_DTYPES))
        device_type = torch.device(device).type
        if amp == "fp16":
            if device_type != "cuda":
                raise ValueError("fp16 autocast needs a CUDA device; use bf16 on the CPU")
            return cls(torch.float16, make_grad_scaler("cuda"), channels_last)
        return cls(torch.bfloat16, None, channels_last)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """Autocast on ``device`` with :attr:`amp_dtype` (a no-op without one)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)

    def prepare(
        self, images: Tensor, targets: Tensor, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Move a batch to ``device``, in channels-last format when asked."""
        images = images.to(device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(device, non_blocking=True)
