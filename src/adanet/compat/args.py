"""Read the ``args.txt`` that the original RANet and MSDNet training scripts write.

Both originals save ``str(args)`` — one ``Namespace(key=value, ...)`` line — into their save
folder. This module parses that line without evaluating it: every value must be a Python
literal, so a crafted file cannot run code.
"""

from __future__ import annotations

import ast
import os
from typing import Any, Literal

from adanet.data.catalog import DATASETS

__all__ = ["REFERENCE_DATASETS", "parse_dash_list", "parse_reference_args", "read_options"]

#: What the originals derive from ``--data`` alone: the stem/head variant and the number of
#: classes, read from adanet's one dataset table (:data:`adanet.data.DATASETS`), which also
#: holds adanet's own datasets (``digits``, ``digits-affine``).
REFERENCE_DATASETS: dict[str, tuple[Literal["cifar", "imagenet"], int]] = {
    name: (info.variant, info.num_classes) for name, info in DATASETS.items()
}


def parse_reference_args(path_or_text: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse an original ``args.txt`` into a plain dict.

    Args:
        path_or_text: The path of an ``args.txt`` file, or its text (a string that starts
            with ``Namespace(``).

    Returns:
        The options as a dict of Python literals (lists stay lists).

    Raises:
        TypeError: Neither a string nor a path.
        FileNotFoundError: When ``path_or_text`` names a file that does not exist.
        ValueError: When the text is not one ``Namespace(...)`` call of literal keyword
            arguments.
    """
    if not isinstance(path_or_text, (str, os.PathLike)):
        raise TypeError(
            "expected the path of an original args.txt or its 'Namespace(...)' text, got "
            f"{type(path_or_text).__name__}"
        )
    text = str(path_or_text) if not isinstance(path_or_text, os.PathLike) else None
    if text is None or not text.lstrip().startswith("Namespace("):
        path = os.fspath(path_or_text)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no args file at {path!r} (pass the path of an original args.txt, or its "
                "text starting with 'Namespace(')"
            )
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse the reference args: {error.msg}: {source[:80]!r}") from None
    call = tree.body
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "Namespace"
        and not call.args
    ):
        raise ValueError(
            f"expected one 'Namespace(key=value, ...)' line as the original scripts write, "
            f"got {source[:80]!r}"
        )
    options: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError("'**' expansions are not allowed in reference args")
        try:
            options[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(
                f"reference arg {keyword.arg!r} is not a Python literal: "
                f"{ast.unparse(keyword.value)[:60]!r}"
            ) from None
    return options


def parse_dash_list(name: str, value: Any) -> Any:
    """Turn a list option into a tuple, accepting the originals' ``'4-2-1'`` strings.

    Values of other types are returned unchanged, for the config's validation to judge.

    Raises:
        ValueError: A string that is not integers joined by dashes.
    """
    if isinstance(value, str):
        try:
            return tuple(int(part) for part in value.split("-"))
        except ValueError:
            raise ValueError(f"{name} must look like '4-2-1', got {value!r}") from None
    if isinstance(value, list):
        return tuple(value)
    return value


_KNOWN = ("ranet", "msdnet")


def read_options(
    path_or_text: str | os.PathLike[str],
    *,
    arch: str,
) -> tuple[dict[str, Any], Literal["cifar", "imagenet"], int]:
    """Parse an args text and check it is ``arch``'s; return its options, stem variant and
    class count (derived from ``--data``).

    Args:
        path_or_text: Path of an ``args.txt``, or its text.
        arch: The architecture expected (compared case-insensitively); a text without
            ``arch`` is taken to be this one's.

    Raises:
        ValueError: Another architecture, or an unknown dataset.
    """
    args = parse_reference_args(path_or_text)
    found = str(args.get("arch", arch))
    if found.lower() != arch.lower():
        hint = f" (read them with arch={found!r}, or arch=None)" if found.lower() in _KNOWN else ""
        raise ValueError(f"these reference args are for arch={found!r}, not {arch}{hint}")
    data = args.get("data", "cifar10")
    if data not in REFERENCE_DATASETS:
        raise ValueError(
            f"unknown dataset data={data!r} in the reference args; known datasets "
            f"{sorted(REFERENCE_DATASETS)}"
        )
    variant, num_classes = REFERENCE_DATASETS[data]
    return args, variant, num_classes
