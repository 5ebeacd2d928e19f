"""No import cycles among imgzoo's own modules.

A static scan, so that an import hidden inside a function (which runs long after startup, and
so fails late or never in a quick test) counts as much as one at the top of a module. What
counts as "module A imports module B":

* ``import imgzoo.x.y`` and ``from imgzoo.x.y import name``: A imports ``imgzoo.x.y`` (the
  packages above it are not counted, or every module would import ``imgzoo``);
* ``from imgzoo.x import y`` where ``y`` is a submodule: A imports ``imgzoo.x.y`` and
  ``imgzoo.x`` (it reads ``y`` off the package, so it needs the package's ``__init__``);
* importing a package means importing its ``__init__``; relative imports are resolved;
* at the top of a module, in a function, anywhere, except under ``if TYPE_CHECKING:``.

Strings (``imgzoo/__init__.py``'s lazy ``__getattr__`` table, ``"module:Class"`` declarations)
are not imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "core" / "imgzoo"


# ── the scan ─────────────────────────────────────────────────────────────────────────────────
def module_files(package: Path) -> dict[str, Path]:
    """Every module of the package rooted at ``package``, by dotted name (a package by the
    name of its ``__init__``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, except those in an ``if TYPE_CHECKING:`` body
    (its ``else:`` runs, so it counts)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = [node.test, *node.orelse]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _import_nodes(child)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` means: itself, or the longest module above it (``pkg.mod.attr``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_modules(name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports (see the module docstring)."""
    path = modules[name]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [_known(alias.name, modules) for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            submodules = [f"{source}.{alias.name}" for alias in node.names]
            targets = [_known(source, modules), *(sub for sub in submodules if sub in modules)]
        found.update(target for target in targets if target is not None and target != name)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_files(package)
    return {name: imported_modules(name, modules) for name in modules}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles, each a path ``[a, b, ..., a]`` starting at its first module in sorted order:
    in each group of modules that import each other (a strongly connected component of more
    than one module), the shortest cycle through each of its modules. Sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = set()
    for component in components:
        for member in component:
            cycle = _cycle_through(member, component, graph)[:-1]
            first = cycle.index(min(cycle))
            cycles.add((*cycle[first:], *cycle[:first], min(cycle)))
    return sorted(list(cycle) for cycle in cycles)


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``component`` (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a cycle it cannot reach")  # pragma: no cover


# ── the tests ────────────────────────────────────────────────────────────────────────────────
def test_imgzoo_has_no_import_cycles() -> None:
    cycles = find_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles (imports inside functions count):\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in cycles
    )


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_the_scan_counts_function_level_and_relative_imports_but_not_type_checking_ones(
    tmp_path: Path,
) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import thing\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg import c\nelse:\n    import pkg.sub\n",
            "pkg/a.py": "import os\n\ndef f():\n    from .b import g\n",
            "pkg/b.py": "from pkg import a  # reads `a` off the package\n",
            "pkg/c.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.a\n",
            "pkg/sub/__init__.py": "from .. import c\nfrom . import leaf\n",
            "pkg/sub/leaf.py": "from ..a import thing\nimport pkg.c.attribute\n",
        },
    )
    assert import_graph(package) == {
        "pkg": {"pkg.a", "pkg.sub"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg", "pkg.a"},
        "pkg.c": set(),
        "pkg.sub": {"pkg", "pkg.c", "pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.a", "pkg.c"},
    }


def test_the_scan_reports_each_cycle_as_a_path() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "x": {"y"},
        "y": {"x"},
    }
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["x", "y", "x"]]
