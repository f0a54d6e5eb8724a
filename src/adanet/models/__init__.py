"""Ready-made networks built from adanet's blocks."""

from .ranet import RANet
from .ranet_config import RANetConfig

__all__ = ["RANet", "RANetConfig"]
