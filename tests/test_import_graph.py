"""The package's imports, read with ``ast``: no cycles, and dependencies pointing cli -> pipelines -> library.

Every ``import`` and ``from ... import`` in every module counts, at the top of a file or inside a
function: an import deferred into a function hides a circle from Python, not from a reader.
Module names are the installed ones (``cli/`` is ``ckdsnn_events.cli``, ``pipelines/`` is
``ckdsnn_events.pipelines``), read from setup.cfg's ``package_dir``.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = "ckdsnn_events"


def package_dirs() -> dict[str, Path]:
    """Installed package name -> source folder, from setup.cfg's ``package_dir``."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    dirs = {}
    for line in parser["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        dirs[name.strip()] = REPO / folder.strip()
    return dirs


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its ``__init__.py``)."""
    found = {}
    for package, folder in package_dirs().items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
            candidates = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:  # `import a.b.c` of a name inside a module
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in sorted(known.items())}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected component with one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
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
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component always has one


def test_the_graph_reads_every_module():
    graph = import_graph()
    for name in ("ckdsnn_events.energy.counting", "ckdsnn_events.cli.main", "ckdsnn_events.pipelines.train",
                 "ckdsnn_events.distill.runs"):
        assert name in graph, name
    assert "ckdsnn_events.energy.ops" in graph["ckdsnn_events.energy.counting"]
    assert "ckdsnn_events.distill.runs" in graph["ckdsnn_events.pipelines.train"]
    assert "ckdsnn_events.cli.train" in graph["ckdsnn_events.cli.main"]  # `from pkg import module`


def test_find_cycles_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]  # self-imports are dropped when the graph is read
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .a import x\n")
    (package / "a.py").write_text("from . import b\nfrom .b import y\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import x\n")
    known = {"pkg": package / "__init__.py", "pkg.a": package / "a.py", "pkg.b": package / "b.py"}
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_dependencies_point_from_cli_to_pipelines_to_the_library():
    layers = {"ckdsnn_events.cli": 2, "ckdsnn_events.pipelines": 1}

    def layer(module: str) -> int:
        return next((rank for prefix, rank in layers.items() if module == prefix or module.startswith(prefix + ".")), 0)

    entry_points = {"ckdsnn_events.__main__"}  # `python -m ckdsnn_events` starts the CLI
    upward = [f"{source} -> {target}" for source, targets in import_graph().items() for target in sorted(targets)
              if layer(target) > layer(source) and source not in entry_points]
    assert not upward, "imports against the direction cli -> pipelines -> library:\n" + "\n".join(upward)
