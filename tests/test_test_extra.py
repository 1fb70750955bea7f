"""``pip install -e '.[test]'`` (the README's test command) installs all the suite imports."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _closure(name: str, extras: set[str]) -> set[str]:
    """The distributions installing ``name[extras]`` pulls in, read from the installed metadata."""
    seen: set[str] = set()
    todo = [(name, frozenset(extras))]
    while todo:
        dist, wanted = todo.pop()
        key = canonicalize_name(dist)
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in metadata.requires(dist) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in wanted or {""}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


def _guarded(node: ast.Try) -> bool:
    """A ``try`` whose handler catches ImportError: the import in it is optional."""
    caught: list[ast.expr] = []
    for handler in node.handlers:
        if isinstance(handler.type, ast.Tuple):
            caught.extend(handler.type.elts)
        elif handler.type is not None:
            caught.append(handler.type)
    return any(
        isinstance(name, ast.Name) and name.id in {"ImportError", "ModuleNotFoundError"}
        for name in caught
    )


def _imported_top_level_modules(paths: list[Path]) -> set[str]:
    """Top-level modules imported unconditionally (not under a ``try: ... except ImportError``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Try) and _guarded(node):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for path in paths:
        visit(ast.parse(path.read_text()))
    return found


def test_the_test_extra_installs_every_module_the_suite_imports() -> None:
    installed = _closure("netabase", {"test"})
    # netabase's own modules too: the tests import netabase._bench (aiosqlite) and the plugin
    sources = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "netabase").rglob("*.py")])
    owners = metadata.packages_distributions()
    local = {path.stem for path in (ROOT / "tests").rglob("*.py")} | {"netabase", "examples"}
    missing = {
        module: owners[module]
        for module in _imported_top_level_modules(sources)
        if module not in sys.stdlib_module_names and module not in local and module in owners
        if not any(canonicalize_name(dist) in installed for dist in owners[module])
    }
    assert not missing, (
        f"imported by tests/ or netabase/ but not installed by netabase[test]: {missing}"
    )
