"""Griffe extension for the API reference: render Sphinx cross-reference roles as code.

adanet's docstrings are Google style but refer to other objects with Sphinx roles
(``:func:`early_exit```, ``:class:`~torch.utils.data.DistributedSampler```), which Markdown
would show verbatim. This rewrites each role as inline code of the name it points to (the
last component when the target starts with ``~``, as Sphinx displays it). Docstrings in the
source stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")


def _replace(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    if match.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring of the loaded package."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and ":`" in docstring.value:
            docstring.value = _ROLE.sub(_replace, docstring.value)
