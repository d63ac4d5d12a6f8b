"""The import graph of the product packages: no cycle, and no import hidden inside a
function (a deferred import is how a cycle or an optional dependency hides)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("mailnode", "coordinator", "mailctl", "archive", "devtools")


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in PACKAGES:
        base = ROOT / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            if "proto" in rel.parts:
                continue  # generated; imports only its own siblings
            name = ".".join(rel.parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(imported module, node) for each import, resolving relative ones."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            yield base, node
            for alias in node.names:
                yield f"{base}.{alias.name}", node


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    inside.add(id(sub))
    return inside


def _graph():
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    hidden = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _type_checking_blocks(tree)
        in_function = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(fn):
                    in_function.add(id(sub))
        for target, node in _imports(tree, name, path.name == "__init__.py"):
            if target not in modules or target == name or id(node) in typing_only:
                continue
            graph[name].add(target)
            if id(node) in in_function:
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    return graph, sorted(set(hidden))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_product_imports_form_no_cycle():
    graph, _ = _graph()
    assert len(graph) > 50  # the walk found the packages
    assert _cycles(graph) == []


def test_no_product_module_hides_an_import_inside_a_function():
    _, hidden = _graph()
    assert hidden == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
