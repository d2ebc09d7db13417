"""The library's shape (issue 27): small modules, short functions and docstrings, no import cycles.

The core is everything in src/steinkit but the reproductions (``experiments/``). Limits: a module
at most 450 lines, a function or method at most 80 lines, a docstring (of a module, class or
function) at most 40 lines; the import graph has no cycle, inside packages too (test_layers
checks the graph of every import; here the cycle finder is shown one inside a package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from test_layers import _cycles, _imports, import_graph

SRC = Path(__file__).resolve().parents[1] / "src" / "steinkit"
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_DOCSTRING_LINES = 450, 80, 40


def core_modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "experiments" not in p.relative_to(SRC).parts)


def _name(path: Path) -> str:
    return str(path.relative_to(SRC.parent)) if path.is_relative_to(SRC.parent) else path.name


def too_long(path: Path) -> list[str]:
    """Every limit ``path`` breaks, one line each."""
    text = path.read_text()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{_name(path)}: {lines} lines (at most {MAX_MODULE_LINES})")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        where = f"{_name(path)}:{getattr(node, 'lineno', 1)} {getattr(node, 'name', '(module)')}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{where}: {length} lines (at most {MAX_FUNCTION_LINES})")
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and ast.get_docstring(node, clean=False) is not None:
            doc = node.body[0]
            length = doc.end_lineno - doc.lineno + 1
            if length > MAX_DOCSTRING_LINES:
                found.append(f"{where}: docstring of {length} lines (at most {MAX_DOCSTRING_LINES})")
    return found


@pytest.mark.parametrize("path", core_modules(), ids=_name)
def test_core_module_is_small(path):
    assert too_long(path) == []


def test_the_limits_are_seen(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    doc = "\n".join(["x"] * MAX_DOCSTRING_LINES)
    module = tmp_path / "big.py"
    module.write_text(f'"""{doc}\n"""\n\n\ndef f():\n{body}\n' + "\n" * MAX_MODULE_LINES)
    found = too_long(module)
    assert len(found) == 3, found
    assert "docstring of 41 lines" in found[1] and f"{MAX_FUNCTION_LINES + 1} lines" in found[2]


def test_no_import_cycles_in_the_core():
    graph = import_graph()
    assert _cycles({m: t for m, t in graph.items() if ".experiments" not in m}) == []


def test_a_cycle_inside_a_package_is_found(tmp_path):
    """``from . import a`` in pkg/b.py and ``from .b import x`` in pkg/a.py: a cycle within pkg."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("x = 1\n\n\ndef later():\n    from . import a\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]
