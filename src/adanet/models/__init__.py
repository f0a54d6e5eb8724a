"""Ready-made networks built from adanet's blocks."""

from .config_base import NetworkConfig
from .msdnet import MSDNet
from .msdnet_config import MSDNetConfig
from .network_base import ConfiguredNetwork
from .ranet import RANet
from .ranet_config import RANetConfig

__all__ = ["ConfiguredNetwork", "MSDNet", "MSDNetConfig", "NetworkConfig", "RANet", "RANetConfig"]
