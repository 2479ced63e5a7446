"""The table of operations (workbench.operations): each one reachable from the workspace, refused
to the roles the permission table refuses, and documented."""

from __future__ import annotations

import inspect

import pytest

import workbench as wb
from workbench.operations import OPERATIONS, READ
from workbench.people.roles import PERMISSIONS, ROLES


def test_the_table_is_filled_by_importing_workbench():
    assert {"set_password", "set_user_disabled", "unlock_user", "accounts", "blocked_addresses",
            "unblock_address"} <= set(OPERATIONS)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_is_a_workspace_method_with_its_parameters_and_doc(name):
    op = OPERATIONS[name]
    assert op.permission in PERMISSIONS or op.permission == READ, f"{name}: unknown permission {op.permission!r}"
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
    """One workspace per role (and one without a user) on one store, with a model version
    ``m`` v1 and a pending request on it by the data scientist (``people["request"]``)."""
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from workbench.store import shared
    from workbench.workspace import operator_workspace

    path = tmp_path_factory.mktemp("ops") / "ops.duckdb"
    op = operator_workspace(path)
    for role in ROLES:
        op.add_user(f"u_{role}", role)
    found = {role: wb.connect(path, user=f"u_{role}") for role in ROLES}
    found[None] = wb.connect(path)
    X = np.random.default_rng(0).normal(size=(60, 2))
    with found["data_scientist"].start_run("ops") as run:
        run.register_model(LogisticRegression().fit(X, X[:, 0] > 0), "m", risk_tier="low")
    found["request"] = found["data_scientist"].request_promotion(("m", 1), "Staging", "for the operations test").id
    found["frame"] = pl.DataFrame({"a": X[:, 0], "b": X[:, 1]})
    yield found
    shared.close(path)


def _inside_args(name: str, world) -> dict:
    """Arguments that reach the check of an operation that checks its permission itself."""
    request, frame = world["request"], world["frame"]
    return {
        "request_promotion": dict(model_version=("m", 1), stage="Production", justification="why"),
        "decide": dict(request_id=request, approve=True, comment="ok"),
        "comment": dict(request_id=request, text="a note"),
        "withdraw": dict(request_id=request, reason="no longer"),
        "refresh_request": dict(request_id=request),
        "rollback": dict(model="m", reason="back"),
        "set_rollout": dict(model="m", challenger=1, traffic_share=0.1),
        "set_gate_policy": dict(risk_tier="low", max_drift_share=0.5),
        "update_model": dict(name="m", description="changed"),
        "drift": dict(reference=frame, current=frame, model_version=("m", 1)),
        "monitor": dict(model_version=("m", 1), alerts=True),
    }[name]


@pytest.mark.parametrize("name", sorted(n for n, op in OPERATIONS.items() if op.permission != READ))
def test_each_operation_refuses_the_roles_the_permission_table_refuses(name, people):
    op = OPERATIONS[name]
    args = _inside_args(name, people) if op.checked_inside else _placeholders(op)
    refused = [r for r in ROLES if r not in PERMISSIONS[op.permission]] + [None]
    for role in refused:
        with pytest.raises(wb.PermissionDenied):
            getattr(people[role], name)(**args)
    assert people["data_scientist"].request(people["request"]).status == "pending"  # no refusal changed it


def test_a_misspelt_permission_is_a_bug_for_every_role_the_operators_too():
    from workbench.people import roles

    for role in (*ROLES, roles.OPERATOR):
        with pytest.raises(ValueError, match="not in the permission table"):
            roles.allowed(role, "decidee")


def test_every_operation_is_a_remote_workspace_method_and_an_api_route_with_its_signature():
    from workbench.remote import RemoteWorkspace
    from workbench.server.api import make_api

    routes = {r.path: r for r in make_api("unused.duckdb").routes}  # making it opens no store
    for name, op in OPERATIONS.items():
        method = getattr(RemoteWorkspace, name)
        assert list(inspect.signature(method).parameters)[1:] == list(op.signature.parameters), name
        assert inspect.getdoc(method) == op.doc, name
        assert f"/v1/ops/{name}" in routes, name
        assert routes[f"/v1/ops/{name}"].methods == {"POST"}
