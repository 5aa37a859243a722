"""The structure of the tree: imports only point down the floors
(kernel < models < sim < agents < analysis < cli, see docs/architecture.md), and no two
modules import each other, directly or through others, at import time."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"kernel": 0, "models": 1, "sim": 2, "agents": 3, "analysis": 4, "cli": 5}
FOLDERS = {
    "kernel": ROOT / "aigcsim" / "kernel",
    "models": ROOT / "models",
    "sim": ROOT / "sim",
    "agents": ROOT / "agents",
    "analysis": ROOT / "analysis",
    "cli": ROOT / "aigcsim" / "cli",
}


def _module_name(package: str, path: Path) -> str:
    rel = path.relative_to(FOLDERS[package]).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["aigcsim", package, *parts])


def _modules() -> dict[str, tuple[str, Path]]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            out[_module_name(package, path)] = (package, path)
    return out


def _imports(tree: ast.AST, top_level_only: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every ``aigcsim`` import in ``tree``; with
    ``top_level_only``, only those executed at import time (not inside functions)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                if not (top_level_only and in_function):
                    found.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if not (top_level_only and in_function):
                    found.append((child.lineno, child.module))
                    found.extend((child.lineno, f"{child.module}.{a.name}") for a in child.names)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # imports for annotations only never run
            visit(child, nested)

    visit(tree, False)
    return [(line, name) for line, name in found if name.startswith("aigcsim.")]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def test_no_import_runs_up_the_floors() -> None:
    upward = []
    for name, (package, path) in _modules().items():
        for line, target in _imports(ast.parse(path.read_text()), top_level_only=False):
            parts = target.split(".")
            target_package = parts[1] if len(parts) > 1 else ""
            if target_package in FLOORS and FLOORS[target_package] > FLOORS[package]:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {name} imports {target}")
    assert not upward, "imports that run up the floors:\n" + "\n".join(upward)


def test_no_circle_of_module_imports() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (_, path) in modules.items():
        targets = set()
        for _, target in _imports(ast.parse(path.read_text()), top_level_only=True):
            # ``from a.b import c`` may name a module a.b.c or an attribute of a.b
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative); components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def test_cycle_finder_on_a_known_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _strongly_connected(graph) == [{"a", "b", "c"}]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
