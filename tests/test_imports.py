"""Imports run one way: no pdmer module imports a module that imports it back, directly or through others.

The modules are read with ``ast``, never imported, so the check sees every import whether or not its branch runs.
What counts as an edge A -> B (A's code can run B's module body):

* every ``import``/``from ... import`` in A, at the top or inside a function, class or branch: an import inside a
  function is how a cycle hides, not how it goes away (it only moves the failure to the first call). The one
  exception is an ``if TYPE_CHECKING:`` block, which never runs;
* ``from pdmer.x import y`` is an import of ``pdmer.x.y`` when that is a module, else of ``pdmer.x`` (its
  ``__init__``); relative imports are resolved against A's package;
* ``importlib.import_module("pdmer.x")`` is an import of ``pdmer.x``; with an f-string whose fixed start is
  ``"pdmer.x."``, of each module ``pdmer.x.y`` whose name ``"y"`` A spells as a string (the lazy ``__getattr__`` of
  ``pdmer.export`` picks ``graph`` or ``runtime`` from a table);
* importing ``pdmer.x.y`` also runs the packages above it (``pdmer.x``), except the ones A itself lives in: those
  have started before A's own body runs, so a package's ``__init__`` re-exporting its submodules is an edge
  (``pdmer.model`` -> ``pdmer.model.dsaml``), and ``pdmer.model.loss`` importing ``pdmer.model.config`` is not an
  edge back to ``pdmer.model``. A submodule naming its own package (``from pdmer.model import DSAML``) is an edge,
  and a cycle only if that ``__init__`` reaches the submodule again.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pdmer"


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is it a package's __init__)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """(imported name, line) for every import statement and import_module call in a module that can run."""

    def __init__(self, module: str, is_package: bool, modules: dict) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.found: list[tuple[str, int]] = []
        self.strings: set = set()  # every constant in the module, for names picked at run time

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self.found.append((sub if sub in self.modules else base, node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
        if name == "import_module" and node.args:
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                self.found.append((target.value, node.lineno))
            elif isinstance(target, ast.JoinedStr) and target.values and isinstance(target.values[0], ast.Constant):
                prefix = target.values[0].value  # any module under it whose name this module spells as a string
                self.found += [(other, node.lineno) for other in self.modules
                               if other.startswith(prefix) and other[len(prefix):] in self.strings]
        self.generic_visit(node)


def import_graph(modules: dict[str, tuple[Path, bool]], root: Path = ROOT) -> dict[str, dict[str, str]]:
    """Module -> {module it imports: "file:line" of the first such import}; only modules of the package."""
    graph: dict[str, dict[str, str]] = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        visitor = _Imports(module, is_package, modules)
        visitor.strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
        visitor.visit(tree)
        own = set()  # the packages this module lives in: already started when its body runs
        parts = module.split(".")
        for end in range(1, len(parts) + (not is_package)):
            own.add(".".join(parts[:end]))
        edges = graph.setdefault(module, {})
        for name, line in visitor.found:
            parts = name.split(".")
            targets = [name] + [".".join(parts[:end]) for end in range(1, len(parts)) if ".".join(parts[:end]) not in own]
            for target in targets:
                if target in modules and target != module:
                    edges.setdefault(target, f"{path.relative_to(root)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One shortest cycle through each group of modules that reach one another (Tarjan's strongly connected
    components), as [a, b, ..., a]; empty when imports run one way."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in sorted(groups):
        start, members = group[0], set(group)
        previous = {start: None}
        queue = [start]
        while queue:  # breadth first inside the group: the shortest way from start back to start
            node = queue.pop(0)
            if start in graph[node]:
                path = [start]
                while node is not None:
                    path.append(node)
                    node = previous[node]
                found.append(path[::-1])
                break
            for other in sorted(graph[node]):
                if other in members and other not in previous:
                    previous[other] = node
                    queue.append(other)
    return found


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    """The cycle, where each of its imports is, and every module that shares it (more cycles may run through them:
    fix this one and run again)."""
    group = sorted({b for a in cycle for b in reachable(graph, a)} & {a for a in graph if cycle[0] in reachable(graph, a)})
    return "\n  ".join([" -> ".join(cycle)] + [f"{a} -> {b} at {graph[a][b]}" for a, b in zip(cycle, cycle[1:])]
                       + [f"(modules in this knot: {', '.join(group)})"])


def reachable(graph: dict[str, dict[str, str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for other in graph[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def test_pdmer_imports_have_no_cycles():
    graph = import_graph(module_files())
    found = cycles(graph)
    assert not found, "import cycles (imports must run one way):\n" + "\n".join(describe(c, graph) for c in found)


def test_graph_sees_function_level_relative_and_package_imports(tmp_path):
    """The reader itself: each kind of import above becomes an edge, and a cycle through a function is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.a import A\n")
    (package / "sub" / "a.py").write_text("from . import b\nA = 1\n")
    (package / "sub" / "b.py").write_text("from pkg.sub import c\nfrom typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    import pkg.d\n")
    (package / "sub" / "c.py").write_text("def f():\n    from ..d import D\n")
    (package / "d.py").write_text("import importlib\nD = importlib.import_module(f'pkg.sub.{N[0]}')\nN = ['a', 'c']\n")
    modules = module_files(tmp_path, "pkg")
    graph = {module: set(edges) for module, edges in import_graph(modules, tmp_path).items()}
    assert graph["pkg.sub"] == {"pkg.sub.a"}
    assert graph["pkg.sub.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.sub.c"}  # TYPE_CHECKING never runs; its own package pkg.sub is no edge
    assert graph["pkg.sub.c"] == {"pkg.d"}
    assert graph["pkg.d"] == {"pkg.sub", "pkg.sub.a", "pkg.sub.c"}
    assert cycles({module: dict.fromkeys(edges, "") for module, edges in graph.items()}) == [
        ["pkg.d", "pkg.sub.c", "pkg.d"]]

