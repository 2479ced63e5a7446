"""The public surface: every public workspace method is a declared operation, and every public
function, method and class of the package says what it does."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import workbench as wb
from workbench.operations import OPERATIONS

PACKAGE = Path(wb.__file__).parent
#: Workspace members that are plumbing of the object itself, not operations on the store.
PLUMBING = {"flush", "close", "user", "role", "ctx", "store", "for_caller"}  # for_caller: the server's constructor


def test_every_public_workspace_method_is_a_declared_operation():
    members = {name for name, _ in inspect.getmembers(wb.Workspace) if not name.startswith("_")}
    undeclared = sorted(members - set(OPERATIONS) - PLUMBING)
    assert not undeclared, f"Workspace methods missing from the operations table: {undeclared}"
    assert set(OPERATIONS) <= members, sorted(set(OPERATIONS) - members)


def _undocumented(path: Path) -> list[str]:
    found = []

    def visit(body, prefix=""):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {prefix}{node.name}")
                if isinstance(node, ast.ClassDef):
                    visit(node.body, node.name + ".")

    visit(ast.parse(path.read_text()).body)
    return found


def test_every_public_function_method_and_class_has_a_docstring():
    missing = [item for path in sorted(PACKAGE.rglob("*.py")) for item in _undocumented(path)]
    assert not missing, f"{len(missing)} without a docstring:\n" + "\n".join(missing)
