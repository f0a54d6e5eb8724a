"""Hugging Face Hub conventions for adanet model directories (the optional ``hub`` extra).

:class:`EarlyExitHubModel` offers ``ModelHubMixin``'s entry points (``save_pretrained``,
``from_pretrained``, ``push_to_hub``) over the directories :func:`adanet.save_pretrained`
writes, without inheriting from the mixin, so ``huggingface_hub`` is imported only when the Hub
itself is used.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adanet.deploy.model_dir import PretrainedInfo, load_pretrained, save_pretrained
from adanet.deploy.model_dir.save import as_preprocessing
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.pretrained_cfg import PretrainedCfg
from adanet.policies.patience import PatienceExitPolicy
from adanet.policies.threshold import EarlyExitPolicy

__all__ = ["EarlyExitHubModel"]

_HUB_HINT = "pip install 'adanet-torch[hub]'"


class EarlyExitHubModel:
    """A model with its policy and preprocessing, with ``ModelHubMixin``'s entry points.

    ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` take the arguments of
    ``huggingface_hub.ModelHubMixin``'s methods of the same names. Local directories need
    nothing beyond adanet; a Hub repository id needs the ``hub`` extra.

    Args:
        model: A RANet or MSDNet.
        policy: The calibrated policy.
        preprocessing: Mean, std and input size.

    Attributes:
        model: The network (eval mode after :meth:`from_pretrained`).
        policy: The policy, or ``None``.
        preprocessing: The preprocessing, or ``None``.
    """

    def __init__(
        self,
        model: EarlyExitNetwork,
        policy: EarlyExitPolicy | PatienceExitPolicy | None = None,
        preprocessing: PretrainedCfg | Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self.preprocessing = as_preprocessing(preprocessing)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write the model directory; optionally push it to the Hub.

        Returns:
            The commit URL when pushed, else ``None``.
        """
        save_pretrained(self.model, save_directory, self.policy, self.preprocessing)
        if push_to_hub:
            if repo_id is None:
                repo_id = Path(save_directory).name
            return self._upload(Path(save_directory), repo_id, **push_to_hub_kwargs)
        return None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        arch: str | None = None,
    ) -> EarlyExitHubModel:
        """Load from a local directory, or download a Hub repository first.

        ``arch``, when given, is the network expected (see :func:`adanet.load_pretrained`): a
        directory holding another is refused.

        Raises:
            ImportError: A repository id without the ``hub`` extra.
            PretrainedError: What :func:`adanet.load_pretrained` refuses.
        """
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            try:
                from huggingface_hub import snapshot_download
            except ImportError:
                raise ImportError(
                    f"{str(pretrained_model_name_or_path)!r} is not a local directory; "
                    f"downloading from the Hugging Face Hub needs the 'hub' extra: {_HUB_HINT}"
                ) from None
            path = Path(
                snapshot_download(
                    repo_id=str(pretrained_model_name_or_path),
                    revision=revision,
                    cache_dir=None if cache_dir is None else str(cache_dir),
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
            )
        model = load_pretrained(path, arch=arch)
        info: PretrainedInfo = model.pretrained  # type: ignore[assignment]
        return cls(model, info.policy, info.preprocessing)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str = "Push model using huggingface_hub.",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
    ) -> str:
        """Save into a temporary directory and upload it to the Hub repository ``repo_id``.

        Returns:
            The commit URL.

        Raises:
            ImportError: Without the ``hub`` extra.
        """
        with tempfile.TemporaryDirectory() as temporary:
            save_pretrained(self.model, temporary, self.policy, self.preprocessing)
            return self._upload(
                Path(temporary),
                repo_id,
                commit_message=commit_message,
                private=private,
                token=token,
                branch=branch,
                create_pr=create_pr,
            )

    @staticmethod
    def _upload(
        folder: Path,
        repo_id: str,
        *,
        commit_message: str = "Push model using huggingface_hub.",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
    ) -> str:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise ImportError(
                f"pushing to the Hugging Face Hub needs the 'hub' extra: {_HUB_HINT}"
            ) from None
        api = HfApi(token=token)
        repo = api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=getattr(repo, "repo_id", repo_id),
            folder_path=folder,
            commit_message=commit_message,
            revision=branch,
            create_pr=create_pr,
        )
        return str(commit)
