"""The library is a house of layers: each imports only the layers below it, nothing imports in
a circle, and the pipelines are siblings that never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import source_tree
from source_tree import FOLDERS

# Lowest first; a module may import its own layer and the ones before it (README, "Layout").
LAYERS = (
    "runtime",
    "data",
    "prompts",
    "hub",
    "sam",
    "model",
    "inference",
    "training",
    "eval",
    "reports",
    "jobs",
    "api",
    "annotate",
    "pipelines",
    "commands",
)
# The package's own top: `import samic_vos` (the lazy public API) and `python -m samic_vos`.
TOP = {"samic_vos": "api", "samic_vos.__main__": "commands"}


def layer_of(module: str) -> str:
    if module in TOP:
        return TOP[module]
    name = module.split(".")[1]
    assert name in LAYERS, f"{module} sits in no layer; put it in one of {LAYERS}"
    return name


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file (functions included)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("samic_vos"):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_tree.source_modules(source_tree.REPO)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_module_sits_in_a_layer():
    stray = [
        m for m in source_tree.source_modules() if m not in TOP and m.split(".")[1] not in LAYERS
    ]
    assert stray == [], f"modules outside every layer: {stray}"


def test_no_import_runs_up_a_layer():
    upward = [
        f"{source} ({layer_of(source)}) imports {target} ({layer_of(target)})"
        for source, targets in import_graph().items()
        for target in sorted(targets)
        if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(source))
    ]
    assert upward == []


def test_no_import_circle():
    graph = import_graph()
    circles = []
    for start in graph:
        # modules reachable from `start`; a circle when `start` is one of them
        seen, todo = set(), list(graph[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
        if start in seen:
            circles.append(start)
    assert circles == [], f"modules on an import circle: {circles}"


def test_pipelines_are_siblings():
    graph = import_graph()
    pipelines = {m for m in graph if m.startswith("samic_vos.pipelines.")}
    crossing = [f"{m} imports {t}" for m in sorted(pipelines) for t in graph[m] & pipelines]
    assert crossing == [], "what two pipelines share belongs in the library"


def test_the_checker_sees_upward_imports_and_circles(tmp_path, monkeypatch):
    """The rules above catch what they say they catch, on a made-up tree."""
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "samic_vos" / "runtime").mkdir()
    (tmp_path / "samic_vos" / "data").mkdir()
    (tmp_path / "samic_vos" / "runtime" / "a.py").write_text("from samic_vos.data import b\n")
    (tmp_path / "samic_vos" / "data" / "b.py").write_text(
        "def f():\n    from samic_vos.runtime.a import x\n"
    )
    monkeypatch.setattr(source_tree, "REPO", tmp_path)
    graph = import_graph()
    assert graph["samic_vos.runtime.a"] == {"samic_vos.data.b"}
    assert graph["samic_vos.data.b"] == {"samic_vos.runtime.a"}
    for rule in (test_no_import_runs_up_a_layer, test_no_import_circle):
        try:
            rule()
        except AssertionError:
            continue
        raise AssertionError(f"{rule.__name__} passed on a tree that breaks it")
