"""The table of operations (workbench.operations): each one reachable from the workspace, refused
to the roles the permission table refuses, and documented."""

from __future__ import annotations

import inspect

import pytest

import workbench as wb
from workbench.operations import OPERATIONS
from workbench.people.roles import PERMISSIONS, ROLES


def test_the_table_is_filled_by_importing_workbench():
    assert {"set_password", "set_user_disabled", "unlock_user", "accounts", "blocked_addresses",
            "unblock_address"} <= set(OPERATIONS)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_is_a_workspace_method_with_its_parameters_and_doc(name):
    op = OPERATIONS[name]
    assert op.permission in PERMISSIONS, f"{name}: unknown permission {op.permission!r}"
    method = getattr(wb.Workspace, name, None)
    assert method is not None, f"{name} is declared but Workspace has no such method"
    params = list(inspect.signature(method).parameters.values())[1:]  # without self
    assert [(p.name, p.kind, p.default, p.annotation) for p in params] == \
        [(p.name, p.kind, p.default, p.annotation) for p in op.signature.parameters.values()]
    assert len(op.doc) > 40 and inspect.getdoc(method) == op.doc


def _placeholders(op) -> dict:
    return {p.name: None for p in op.signature.parameters.values() if p.default is inspect.Parameter.empty}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """One workspace per role (and one without a user) on one store."""
    from workbench.store import shared
    from workbench.workspace import operator_workspace

    path = tmp_path_factory.mktemp("ops") / "ops.duckdb"
    op = operator_workspace(path)
    for role in ROLES:
        op.add_user(f"u_{role}", role)
    found = {role: wb.connect(path, user=f"u_{role}") for role in ROLES}
    found[None] = wb.connect(path)
    yield found
    shared.close(path)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_refuses_the_roles_the_permission_table_refuses(name, people):
    op = OPERATIONS[name]
    refused = [r for r in ROLES if r not in PERMISSIONS[op.permission]] + [None]
    for role in refused:
        ws = people[role]
        with pytest.raises(wb.PermissionDenied):
            getattr(ws, name)(**_placeholders(op))
