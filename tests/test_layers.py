"""The import graph of ``src/burnish``: no cycles, and imports only go down the layers.

Every ``import`` counts, also those inside functions (they run too, only later). The layer
order is written once, here: a package may import from a lower layer, never from its own
layer's other packages or from a higher one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import burnish

ROOT = Path(burnish.__file__).parent

LAYERS: list[set[str]] = [
    {"errors", "lazy"},
    {"io", "progress", "seeding"},
    {"config", "tasks"},
    {"models"},
    {"data", "kvcache"},
    {"eval"},
    {"train", "merge", "scaling"},
    {"serve", "compress", "reward", "sdg"},
    {"zoo_build", "quickstart"},
    {"cli"},
    {"__main__", "__init__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(["burnish", *parts])


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The ``burnish.*`` modules a file imports (absolute imports; the code uses no others).
    ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one, else ``pkg``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("burnish.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("burnish."):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in files.items():
        graph[name] |= {m for m in _imports(path, set(files)) if m in files and m != name}
    return graph


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def test_every_package_has_a_layer() -> None:
    tops = {_top(m) for m in _graph()}
    placed = set().union(*LAYERS)
    assert tops <= placed, sorted(tops - placed)


def test_imports_only_go_down() -> None:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    bad = []
    for module, deps in _graph().items():
        for dep in deps:
            a, b = _top(module), _top(dep)
            if a != b and layer[b] >= layer[a]:
                bad.append(f"{module} -> {dep}")
    assert not bad, bad


def test_no_module_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError(" -> ".join(cycle))
