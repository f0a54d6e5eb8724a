"""adanet: adaptive-inference building blocks for PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("adanet-torch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
