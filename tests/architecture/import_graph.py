"""The project's import graph, read statically with ``ast``: every ``import`` of the four
packages, at module level and inside functions (lazy imports count: they cycle at run time just
the same), including ``if TYPE_CHECKING:`` blocks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("adv_core", "cluster", "sweeps", "analysis")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the four packages: dotted name -> file."""
    return {
        module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "notebooks" not in p.parts
    }


def _imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    """Dotted names this module imports (``from a import b`` gives ``a.b``; the caller keeps
    it only if that is a module, else falls back to ``a``)."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                yield f"{base}.{a.name}" if a.name != "*" else base


def imports(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> everything it imports: project modules (resolved to the deepest module that
    exists) and third-party top-level names (``torch``, ``ray``, ...)."""
    mods = mods if mods is not None else modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        targets: set[str] = set()
        for dotted in _imported(tree, name, path.name == "__init__.py"):
            top = dotted.split(".")[0]
            if top not in PACKAGES:
                targets.add(top)
                continue
            while dotted not in mods and "." in dotted:  # `from pkg import function`
                dotted = dotted.rpartition(".")[0]
            if dotted != name:
                targets.add(dotted)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
