"""``adanet eval --policy SPEC``: load an early-exit policy from a file or a Python object.

``SPEC`` is either

* a JSON file: a policy as :meth:`adanet.EarlyExitPolicy.to_dict` (or the patience policy's
  ``to_dict``) writes it, or an object holding one under ``"policy"`` (as the entries of
  ``policies.json`` do), read with :func:`adanet.policies.serialization.policy_from_dict`; or
* ``package.module:name`` (``name`` may be dotted): an object that follows
  :class:`adanet.ExitDecider`, or a callable taking no arguments that returns one (a class, a
  factory). The module is imported, so it runs that module's code, as ``python -m`` would:
  give only modules you trust (see ``docs/security.md``). Whatever the import raises, even
  ``sys.exit``, is reported as a usage error (exit 2).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adanet.cli.errors import CLIError
from adanet.policies.protocol import ExitDecider, check_policy, check_policy_fits
from adanet.policies.serialization import policy_from_dict

__all__ = ["check_fits", "load_policy"]


def _from_json(path: Path) -> ExitDecider:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CLIError(f"--policy {path}: not a readable JSON file ({error})") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("policy"), Mapping):
        loaded = loaded["policy"]
    try:
        return policy_from_dict(loaded)
    except (TypeError, ValueError) as error:
        raise CLIError(
            f"--policy {path}: not a policy (expected what EarlyExitPolicy.to_dict writes): {error}"
        ) from None


def _from_object(spec: str) -> ExitDecider:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CLIError(
            f"--policy {spec!r}: expected a JSON file or package.module:name of an ExitDecider"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise CLIError(f"--policy {spec!r}: cannot import {module_name!r} ({error})") from None
    except (Exception, SystemExit) as error:
        # Importing runs the module's code: whatever it raises (a SyntaxError, its own
        # errors, even sys.exit) is the module's failure, reported as a usage error.
        raise CLIError(
            f"--policy {spec!r}: importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CLIError(f"--policy {spec!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    # A class has the protocol's members too, so it is always called, as a factory is.
    if isinstance(target, type) or (not isinstance(target, ExitDecider) and callable(target)):
        try:
            target = target()
        except Exception as error:  # the user's code: report whatever it raised
            raise CLIError(
                f"--policy {spec!r}: calling {attribute}() failed: {type(error).__name__}: {error}"
            ) from None
    try:
        return check_policy(target, f"--policy {spec}")
    except TypeError as error:
        raise CLIError(str(error)) from None


def load_policy(spec: str) -> ExitDecider:
    """The policy ``spec`` names (see the module docstring).

    Raises:
        CLIError: A missing or malformed file, a module or name that cannot be found, a
            factory that fails, or an object that is not an :class:`adanet.ExitDecider`.
    """
    path = Path(spec)
    if path.is_file():
        return _from_json(path)
    if spec.endswith(".json") or ":" not in spec:
        raise CLIError(
            f"--policy {spec!r}: no such file; give a policy JSON file or "
            "package.module:name of an ExitDecider"
        )
    return _from_object(spec)


def check_fits(
    policy: ExitDecider,
    spec: str,
    *,
    num_exits: int,
    num_classes: int,
    input_size: Sequence[int],
    cost_convention: str,
) -> None:
    """Refuse a policy made for another model, input size or cost convention.

    Raises:
        CLIError: Naming what the policy was made for.
    """
    try:
        check_policy_fits(
            policy,
            num_exits=num_exits,
            num_classes=num_classes,
            input_size=input_size,
            cost_convention=cost_convention,
        )
    except ValueError as error:
        raise CLIError(f"--policy {spec}: {error}") from None
