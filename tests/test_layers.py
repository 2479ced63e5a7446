"""The package's layers: an import may only point down, and module-level imports make no cycle.

The layer order is the README's (Layout): each entry is a top-level module or subpackage of
``workbench``. Imports inside functions count too: a lazy import that points up is still a
dependency upward. Imports under ``if TYPE_CHECKING:`` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).parent
LAYERS = [
    {"errors", "policy", "_version", "settings", "freetext", "processes", "datasets", "operations", "wire"},
    {"store"},
    {"people", "registry", "evidence", "protection"},
    {"tracking", "monitoring", "governance"},
    {"reports"},
    {"workspace", "remote", "__init__"},
    {"ui", "cli", "demo", "server"},
]
LAYER = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The layer entry a module belongs to: ``workbench.store.audit`` -> ``store``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def _from_target(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` statement in ``package`` imports from."""
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported workbench module, line, at module level) for each import in ``path``."""
    package = _package_of(path)
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.ImportFrom):
            target = _from_target(node, package)
            if not target.startswith("workbench"):
                continue
            for alias in node.names:  # `from . import x` imports the module x when there is one
                sub = f"{target}.{alias.name}"
                name = sub if _exists(sub) else target
                found.append((name, node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("workbench"):
                    found.append((alias.name, node.lineno, id(node) in top))
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent / Path(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = sorted({_part(_module_name(p)) for p in _all_modules()} - set(LAYER))
    assert not missing, f"add these to LAYERS (and the README's Layout): {missing}"


def test_imports_only_point_down():
    upward = []
    for path in _all_modules():
        mine = _part(_module_name(path))
        for target, line, _ in _imports(path):
            theirs = _part(target)
            if LAYER[theirs] > LAYER[mine]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} "
                              f"(layer {LAYER[theirs]} > {LAYER[mine]})")
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_module_level_imports_make_no_cycle():
    graph: dict[str, set[str]] = {}
    for path in _all_modules():
        me = _module_name(path)
        graph[me] = {t for t, _, top in _imports(path) if top and t != me and not me.startswith(t + ".")}
    # A package's __init__ importing its own modules is how packages work; the cycle that
    # matters is between modules.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walker itself: a lazy import from the store up to the workspace is found."""
    fake = tmp_path / "workbench" / "store"
    fake.mkdir(parents=True)
    (tmp_path / "workbench" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from ..workspace import Workspace\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "workbench")
    assert _imports(fake / "bad.py") == [("workbench.workspace", 2, False)]


def _private_uses(path: Path) -> list[str]:
    """``module._name`` and ``from module import _name`` where the module is another workbench module."""
    module, package = _module_name(path), _package_of(path)
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}  # local name -> workbench module it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _from_target(node, package)
            if not target.startswith("workbench"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _exists(sub):
                    aliases[alias.asname or alias.name] = sub
                elif alias.name.startswith("_") and not alias.name.startswith("__") and target != module:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("workbench") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__") and aliases[node.value.id] != module):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for path in _all_modules() for use in _private_uses(path)]
    assert not found, "private names used from another module:\n" + "\n".join(found)
