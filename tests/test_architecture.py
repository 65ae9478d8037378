"""The package is a house of layers (``asd_utils.LAYERS``): imports only run down or sideways
without a circle, imports sit at the top of their module, and the top level holds only the three
shared utilities. Read from the source with :mod:`ast`, so the test sees every import."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import asd_utils

PACKAGE = Path(asd_utils.__file__).parent
TOP_LEVEL_MODULES = {"__init__.py", "config.py", "paths.py", "device.py"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """``(imported asd_utils module, statement, at module top)`` of every import in ``path``."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    for node in tree.body:  # an import under a top-level ``try``/``if`` still runs at import time
        if isinstance(node, (ast.Try, ast.If)):
            top.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            targets = submodules or [base]
        else:
            continue
        found += [(t, node, id(node) in top) for t in targets if t.split(".")[0] == "asd_utils"]
    return found


def _folder(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _layer(folder: str) -> int:
    for i, names in enumerate(asd_utils.LAYERS):
        if folder in names:
            return i
    raise AssertionError(f"asd_utils.{folder} is in no layer of asd_utils.LAYERS")


def _graph() -> dict[str, set[str]]:
    graph = defaultdict(set)
    for name, path in MODULES.items():
        for target, _, _ in _imports(name, path):
            if target != name and target in MODULES and target != "asd_utils":
                graph[name].add(target)
    return graph


def test_every_folder_and_top_level_module_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert files == TOP_LEVEL_MODULES, f"only the three shared utilities live at the top level: {sorted(files)}"
    for folder in folders | {f[:-3] for f in files - {"__init__.py"}}:
        _layer(folder)
    for folder in folders:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc and len(doc) > 80, f"asd_utils/{folder}/__init__.py needs a docstring saying what it holds"


def test_no_import_runs_up_a_layer():
    upward = [f"{a} -> {b}" for a, targets in _graph().items() for b in targets
              if _folder(a) and _folder(b) and _layer(_folder(b)) > _layer(_folder(a))]
    assert upward == []


def test_the_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(MODULES):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_imports_are_at_module_top_unless_a_comment_says_why():
    hidden = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = {id(n) for n in tree.body}
        for node in tree.body:
            if isinstance(node, (ast.Try, ast.If)):
                top.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                line, before = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                if "#" not in line and not before.startswith("#"):
                    hidden.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {line.strip()}")
    assert hidden == []


def test_no_module_is_longer_than_500_lines_without_a_reason_at_its_top():
    long = []
    for path in MODULES.values():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "Longer than 500 lines:" not in text[:3000]:
            long.append(f"{path.relative_to(PACKAGE.parent)} ({text.count(chr(10))} lines)")
    assert long == []


def test_library_code_never_imports_the_notebook_interface():
    library = [n for n in MODULES if _folder(n) not in {"notebook", "run"}]
    graph = _graph()
    assert [f"{a} -> {b}" for a in library for b in graph[a] if _folder(b) == "notebook"] == []
