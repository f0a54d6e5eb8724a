"""The package's import graph has no cycle, counting imports inside functions.

Every ``import`` and ``from ... import`` of an ``adanet`` module anywhere in a module (at the
top, inside a function, under ``TYPE_CHECKING``) is an edge. Importing ``adanet.a.b`` also
runs ``adanet/a/__init__.py``, so an edge to a module is an edge to each package above it,
except the importing module's own packages (a package always imports its own modules).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import adanet

PACKAGE = Path(adanet.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, importer: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, []
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = importer.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        yield base, [alias.name for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the adanet modules it imports (with the packages that importing runs)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in ast.walk(tree):
            for base, names in _imported(node, name, path.name == "__init__.py"):
                targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
                if base in known and len(targets) < len(names):
                    targets.append(base)
                for target in targets:
                    parts = target.split(".")
                    for i in range(2, len(parts) + 1):
                        above = ".".join(parts[:i])
                        if above in known and above not in own:
                            graph[name].add(above)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("source", "edge"),
    [
        ("from adanet.models.ranet import RANet", "adanet.models.ranet"),
        ("def f():\n    from adanet.models import ranet", "adanet.models.ranet"),
        ("from ..models.ranet import RANet", "adanet.models.ranet"),
        ("import adanet.policies.threshold", "adanet.policies"),
    ],
)
def test_the_graph_sees_every_kind_of_import(source: str, edge: str, tmp_path: Path) -> None:
    tree = ast.parse(source)
    seen = [
        base for node in ast.walk(tree) for base, _ in _imported(node, "adanet.blocks.x", False)
    ]
    assert seen and (seen[0] == edge or edge.startswith(seen[0]) or seen[0].startswith(edge))


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
