"""Ready-made networks built from adanet's blocks."""

from .msdnet import MSDNet
from .msdnet_config import MSDNetConfig
from .ranet import RANet
from .ranet_config import RANetConfig

__all__ = ["MSDNet", "MSDNetConfig", "RANet", "RANetConfig"]
