"""The package's layout: no import circle among its modules, and a short top level.

Imports are read with `ast` from every module, function-level (lazy) imports included: a lazy
import still runs, only later, so a circle through one is a circle all the same. Imports under
`if TYPE_CHECKING:` never run and are left out. An import of `attnclf.a.b` counts as an edge
to that module alone, not to the packages above it that Python also initialises (else every
package whose `__init__` re-exports a submodule would be a circle).
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attnclf"
MAX_TOP_LEVEL = 14  # modules directly in attnclf/, besides its folders


def module_name(path: Path) -> str:
    """`attnclf.x.y` for attnclf/x/y.py, `attnclf.x` for attnclf/x/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` outside `if TYPE_CHECKING:` blocks (their `else` is kept)."""
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def _resolve(name: str) -> str | None:
    """The attnclf module that importing `name` names: itself, or the closest one above."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """The attnclf modules that `module` imports when it runs (lazy imports included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                # `from attnclf.x import y` imports the module attnclf.x.y when there is one
                target = _resolve(f"{base}.{alias.name}") if base in MODULES else _resolve(base)
                if target is not None:
                    found.add(target)
    found.discard(module)
    return found


def test_modules_are_found() -> None:
    assert {"attnclf", "attnclf.cli", "attnclf.predict", "attnclf.model"} <= set(MODULES)


def test_no_import_circle() -> None:
    graph = {m: imports(m) for m in MODULES}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(MODULES)


def test_the_top_level_is_short() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at attnclf/'s top level: {top}"
