"""The package's layers, read from its source: the engine imports nothing above it, and no module imports
itself back through others. Every import counts, at module level or inside a function; for circles, imports
under `if TYPE_CHECKING:` (annotations only, never run) do not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autocompress"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module `name` names (a module, or the package whose attribute it is); None: not ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            found |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return found


def import_graph(type_only: bool = True) -> dict[str, set[str]]:
    """module -> the package modules it imports (a package's own `__init__` importing its children is left out:
    importing a child runs its parent first, which is Python's order, not an upward dependency). Without
    `type_only`, imports under `if TYPE_CHECKING:` are left out."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        base = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        tree = ast.parse(path.read_text())
        skip = set() if type_only else _type_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    parent = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    parent = node.module or ""
                targets = [f"{parent}.{a.name}" for a in node.names]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != name and not name.startswith(found + "."):
                    edges.add(found)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_engine_imports_nothing_above_it():
    upward = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith("autocompress.engine")
                    for t in ts if not t.startswith("autocompress.engine"))
    assert upward == [], "the engine imports the package above it:\n" + "\n".join(upward)


def test_no_module_imports_itself_back():
    cycle = find_cycle(import_graph(type_only=False))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_checks_see_an_upward_import_and_a_circle():
    graph = {"autocompress.engine.a": {"autocompress.config"}, "autocompress.config": {"autocompress.engine.a"}}
    assert find_cycle(graph) == ["autocompress.config", "autocompress.engine.a", "autocompress.config"]
    assert "autocompress.engine.model" in import_graph()["autocompress.engine.structured"]
