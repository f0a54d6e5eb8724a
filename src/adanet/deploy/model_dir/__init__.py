"""A self-contained model directory: ``save_pretrained`` / ``load_pretrained``.

A directory written by :func:`save_pretrained` holds everything needed to serve the model:

* ``config.json``: the format version, the adanet version that wrote it, the architecture
  and its config, the calibrated policy (as :meth:`EarlyExitPolicy.to_dict` writes it), the
  per-exit costs with the input size they were measured at, and the preprocessing (mean, std,
  input size);
* ``model.safetensors`` (when the ``safetensors`` extra is installed) or ``model.pt`` (a bare
  state dict): the weights;
* ``checksums.json``: the SHA-256 of every other file.

:func:`save_pretrained` checks everything before writing and replaces an existing directory
whole, in one swap; :func:`load_pretrained` verifies the checksums, validates every field of
``config.json`` against the network it describes (built first on the meta device, within
documented bounds), refuses a directory written by a newer format, and loads the weights
without executing any pickle (safetensors, or ``torch.load(..., weights_only=True)``). The
model comes back in eval mode, and what else the directory holds is its ``pretrained``
attribute, a :class:`PretrainedInfo`::

    model = adanet.load_pretrained("my-ranet")
    policy = model.pretrained.policy            # EarlyExitPolicy or None
    mean, std = model.pretrained.preprocessing.mean, model.pretrained.preprocessing.std

The modules: :mod:`~adanet.deploy.model_dir.layout` (files, checksums, errors),
:mod:`~adanet.deploy.model_dir.record` (what rebuilds the network, and the config validator),
:mod:`~adanet.deploy.model_dir.save` and :mod:`~adanet.deploy.model_dir.load`.
:class:`adanet.deploy.hub.EarlyExitHubModel` offers the same through the Hugging Face Hub's
conventions; ``adanet export`` turns a training run into such a directory.
"""

from adanet.deploy.model_dir.layout import FORMAT_VERSION, PretrainedError, PretrainedInfo
from adanet.deploy.model_dir.load import load_pretrained
from adanet.deploy.model_dir.save import save_pretrained

__all__ = [
    "FORMAT_VERSION",
    "PretrainedError",
    "PretrainedInfo",
    "load_pretrained",
    "save_pretrained",
]
