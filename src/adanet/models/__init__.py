"""Early-exit networks: the protocol they follow, the published ones, and the registry.

* :class:`EarlyExitNetwork`: the base class. A network implements ``begin`` and ``advance``
  and gets ``forward``, ``forward_features``/``forward_head``, fine-tuning helpers, a
  timm-style :class:`FeatureInfo` and a :class:`PretrainedCfg`.
* :class:`RANet` / :class:`RANetConfig` and :class:`MSDNet` / :class:`MSDNetConfig`: the
  published networks, exact to the original implementations.
* :func:`create_model`, :func:`list_models`, :func:`register_model`: one registry of
  architectures, used by the factory, model directories, the command line and ``compat``.
"""

from adanet.models.config_base import NetworkConfig
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.feature_info import FeatureInfo
from adanet.models.msdnet import MSDNet
from adanet.models.msdnet_config import MSDNetConfig
from adanet.models.network_base import ConfiguredNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.models.ranet import RANet
from adanet.models.ranet_config import RANetConfig
from adanet.models.registry import create_model, list_models, register_model
from adanet.models.state import select_samples

__all__ = [
    "ConfiguredNetwork",
    "EarlyExitNetwork",
    "FeatureInfo",
    "MSDNet",
    "MSDNetConfig",
    "NetworkConfig",
    "PretrainedCfg",
    "RANet",
    "RANetConfig",
    "create_model",
    "list_models",
    "register_model",
    "select_samples",
]
