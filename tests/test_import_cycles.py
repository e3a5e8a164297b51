"""No import cycle between modules of ``and_engine``, function-level and relative imports included.

The import graph is read from the source (AST): every ``import`` / ``from ... import`` anywhere in a module
(top level, functions, ``if`` blocks), relative names resolved against the module's package. Importing
``a.b.c`` also runs ``a`` and ``a.b`` (their ``__init__``), so those are edges too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from and_engine.config import PROJECT_ROOT


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every ``.py`` file under ``root / package`` -> {dotted module name: path} (``__init__`` = the package)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _with_parents(name: str, modules: dict[str, Path]) -> set[str]:
    parts = name.split(".")
    return {p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in modules}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of ``modules`` that module ``name`` (file ``path``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out |= _with_parents(alias.name, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= _with_parents(target, modules)
            out |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules}
    out.discard(name)
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: modules of the same package it imports} for every module under ``root / package``."""
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (each one holds an import cycle), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is small (~100 modules), recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_and_engine_has_no_import_cycle():
    graph = import_graph(PROJECT_ROOT, "and_engine")
    assert len(graph) > 50  # the walk found the engine's modules
    found = cycles(graph)
    detail = ["; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found]
    assert found == [], "import cycles:\n" + "\n".join(detail)


def test_checker_sees_function_level_relative_and_package_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg import c\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")  # relative, inside a function
    (pkg / "sub" / "b.py").write_text("import os\n\nif os:\n    import pkg.a\n")  # absolute, inside an if
    (pkg / "c.py").write_text("from . import a\n")  # importing pkg.sub.b runs pkg.sub (-> c -> a)
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg", "pkg.sub", "pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg", "pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub", "pkg.sub.b"]]
    (pkg / "sub" / "b.py").write_text("import os\n")
    (pkg / "sub" / "__init__.py").write_text("")
    assert cycles(import_graph(tmp_path, "pkg")) == []


def test_and_engine_packages_import_in_one_direction():
    """Collapsed to its sub-packages (text, store, backends, stages, ...), the engine's import graph has no
    cycle either: each layer imports only layers below it (docs/ARCHITECTURE.md)."""
    graph = import_graph(PROJECT_ROOT, "and_engine")
    top = {m: ".".join(m.split(".")[:2]) for m in graph}
    packages: dict[str, set[str]] = {}
    for m, deps in graph.items():
        packages.setdefault(top[m], set()).update(top[d] for d in deps if top[d] != top[m] and d != "and_engine")
    found = cycles(packages)
    assert found == [], f"package-level import cycles: {found}"
