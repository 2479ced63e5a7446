"""The model registry: versions, metadata, stages, aliases, and checked model files."""

from __future__ import annotations

import hashlib
import pathlib
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import workbench as wb
from workbench.registry import models as registry

META = dict(owner_team="credit-risk", use_case="loan default screening", risk_tier="high",
            description="Predicts default within 12 months")


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def models(data):
    """Three real, different fitted models."""
    X, y = data
    return [make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(X, y) for c in (0.01, 0.1, 1.0)]


@pytest.fixture
def three(ws, models):
    """Versions 1, 2 and 3 of 'credit-default', each from its own run."""
    out = []
    for i, m in enumerate(models):
        with ws.start_run("credit", name=f"c{i}") as run:
            run.log_params({"C": m[-1].C})
            out.append(run.register_model(m, "credit-default", **META))
    return out


def _promote(ws, name, version, approval="req-1"):
    """The approval flow's path to Production (a later issue calls this with an approved request)."""
    return ws.ctx.call(lambda conn: registry.transition_stage(conn, ws.user, ws.role, name, version, "Production",
                                                           approval=approval))


def _stages(ws, name="credit-default") -> dict[int, str]:
    return dict(ws.model_versions(name).select("version", "stage").iter_rows())


def test_register_versions_1_2_3(ws, three):
    assert [mv.version for mv in three] == [1, 2, 3]
    assert all(isinstance(mv, wb.ModelVersion) for mv in three)
    assert all(mv.name == "credit-default" and mv.stage == "None" for mv in three)
    runs = ws.search_runs(experiment="credit")
    by_name = dict(runs.select("run_name", "run_id").iter_rows())
    assert [mv.run for mv in three] == [by_name["c0"], by_name["c1"], by_name["c2"]]
    assert three[0].created_by == "dana"
    assert len({mv.sha256 for mv in three}) == 3
    versions = ws.model_versions("credit-default")
    assert versions["version"].to_list() == [3, 2, 1]
    assert versions["run_name"].to_list() == ["c2", "c1", "c0"]
    assert versions["model_class"].to_list() == ["sklearn.pipeline.Pipeline"] * 3
    for mv in three:  # each file is stored under its own sha256
        path = ws.store.artifact_root / mv.sha256[:2] / mv.sha256
        assert hashlib.sha256(path.read_bytes()).hexdigest() == mv.sha256


def test_models_frame_carries_governance_metadata(ws, three):
    ws.register_model({"weights": [1, 2]}, "other", owner_team="fraud", use_case="card fraud", risk_tier="low")
    df = ws.models()
    for col in ("name", "owner_team", "use_case", "risk_tier", "description"):
        assert col in df.columns
    rows = {r["name"]: r for r in df.iter_rows(named=True)}
    credit = rows["credit-default"]
    assert {k: credit[k] for k in META} == META
    assert credit["n_versions"] == 3 and credit["latest_version"] == 3
    assert rows["other"]["risk_tier"] == "low" and rows["other"]["description"] is None


def test_stages_move_between_none_staging_archived(ws, three):
    assert ws.set_stage("credit-default", 2, "Staging") == "Staging"
    assert _stages(ws) == {1: "None", 2: "Staging", 3: "None"}
    assert ws.get_model_version("credit-default", "Staging").version == 2
    ws.set_stage("credit-default", 1, "Archived")
    ws.set_stage("credit-default", 2, "None")
    assert _stages(ws) == {1: "Archived", 2: "None", 3: "None"}
    with pytest.raises(wb.ValidationError, match="'Prod'"):
        ws.set_stage("credit-default", 3, "Prod")
    assert _stages(ws)[3] == "None"


def test_production_is_refused_through_set_stage(ws, three):
    with pytest.raises(wb.PermissionDenied, match="promotion"):
        ws.set_stage("credit-default", 3, "Production")
    with pytest.raises(wb.PermissionDenied):
        ws.ctx.call(lambda conn: registry.transition_stage(conn, ws.user, ws.role, "credit-default", 3, "Production"))
    assert "Production" not in _stages(ws).values()
    assert ws.models().row(0, named=True)["production_version"] is None


def test_transition_with_approval_archives_previous_production(ws, three, op, store_path):
    _promote(ws, "credit-default", 1, approval="req-1")
    assert _stages(ws) == {1: "Production", 2: "None", 3: "None"}
    ws.set_stage("credit-default", 2, "Staging")
    _promote(ws, "credit-default", 2, approval="req-2")
    assert _stages(ws) == {1: "Archived", 2: "Production", 3: "None"}
    assert ws.get_model_version("credit-default", "Production").version == 2
    assert ws.models().row(0, named=True)["production_version"] == 2
    op.add_user("cora", "compliance_officer")
    audit = wb.connect(store_path, user="cora").audit_events()
    events = audit.filter(audit["action"] == "model_version.stage")
    entities = events["entity_id"].to_list()
    assert "credit-default/1" in entities and "credit-default/2" in entities
    assert any('"approval":"req-2"' in p for p in events["payload"].to_list())


def test_aliases_point_at_versions(ws, three):
    # free aliases (champion and challenger are governed: test_governance.py)
    ws.set_alias("credit-default", "candidate", 2)
    ws.set_alias("credit-default", "smallest", 3)
    assert ws.get_model_version("credit-default", "candidate").version == 2
    assert ws.get_model_version("credit-default", "smallest").aliases == ("smallest",)
    ws.set_alias("credit-default", "candidate", 3)  # an alias moves
    mv3 = ws.get_model_version("credit-default", "candidate")
    assert mv3.version == 3 and mv3.aliases == ("candidate", "smallest")
    assert ws.get_model_version("credit-default", 2).aliases == ()
    ws.set_alias("credit-default", "smallest", None)  # and can be removed
    with pytest.raises(wb.NotFoundError, match="smallest"):
        ws.get_model_version("credit-default", "smallest")
    for bad in ("Staging", "Production", "2"):
        with pytest.raises(wb.ValidationError):
            ws.set_alias("credit-default", bad, 1)
    with pytest.raises(wb.NotFoundError, match="7"):
        ws.set_alias("credit-default", "candidate", 7)
    assert ws.get_model_version("credit-default", "candidate").version == 3


def test_load_model_returns_a_working_model(ws, three, models, data):
    X, y = data
    for mv, original in zip(three, models):
        loaded = ws.load_model("credit-default", mv.version)
        assert loaded is not original
        np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
        np.testing.assert_allclose(loaded.predict_proba(X), original.predict_proba(X))
    _promote(ws, "credit-default", 1)  # the champion is the Production version
    np.testing.assert_array_equal(ws.load_model("credit-default", "champion").predict_proba(X),
                                  models[0].predict_proba(X))
    latest = ws.load_model("credit-default")  # no version: the latest
    np.testing.assert_array_equal(latest.predict_proba(X), models[2].predict_proba(X))
    assert (latest.predict(X) == y).mean() > 0.9  # and it is a good model on its own data


class _Booby:
    """Unpickling this creates a marker file: proof the bytes were unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_swapped_model_file_raises_integrity_error_and_is_never_unpickled(ws, three, tmp_path):
    mv = three[1]
    path = ws.store.artifact_root / mv.sha256[:2] / mv.sha256
    assert path.is_file()
    marker = tmp_path / "unpickled"
    path.write_bytes(pickle.dumps(_Booby(marker)))
    with pytest.raises(wb.IntegrityError) as err:
        ws.load_model("credit-default", 2)
    assert mv.sha256[:12] in str(err.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: these bytes would leave the marker if unpickled
    assert marker.exists()
    ws.load_model("credit-default", 1)  # the other versions still load


def test_missing_model_file_is_a_clear_error(ws, three):
    mv = three[0]
    (ws.store.artifact_root / mv.sha256[:2] / mv.sha256).unlink()
    with pytest.raises(wb.NotFoundError, match=mv.sha256[:12]):
        ws.load_model("credit-default", 1)


def test_risk_tier_is_validated(ws, op, store_path, models):
    with pytest.raises(wb.ValidationError, match="'extreme'") as err:
        ws.register_model(models[0], "m", risk_tier="extreme")
    assert "low" in str(err.value) and "high" in str(err.value)
    assert ws.models().is_empty()
    mv = ws.register_model(models[0], "m")  # default tier
    assert mv.version == 1 and ws.models().row(0, named=True)["risk_tier"] == "medium"
    with pytest.raises(wb.ValidationError, match="'critical'"):
        ws.update_model("m", risk_tier="critical")
    assert ws.models().row(0, named=True)["risk_tier"] == "medium"
    op.add_user("lee", "lead")  # a tier change is a lead's or an admin's (test_governance.py)
    changes = wb.connect(store_path, user="lee").update_model("m", risk_tier="high", owner_team="risk")
    assert changes["risk_tier"] == {"from": "medium", "to": "high"}
    row = ws.models().row(0, named=True)
    assert (row["risk_tier"], row["owner_team"]) == ("high", "risk")
    with pytest.raises(wb.ValidationError, match="colour"):
        ws.update_model("m", colour="red")


def test_unknown_model_or_version_is_not_found(ws, three):
    calls = {
        "get unknown model": lambda: ws.get_model_version("nope"),
        "versions of unknown model": lambda: ws.model_versions("nope"),
        "load unknown model": lambda: ws.load_model("nope", 1),
        "alias on unknown model": lambda: ws.set_alias("nope", "champion", 1),
        "update unknown model": lambda: ws.update_model("nope", risk_tier="low"),
        "stage of unknown model": lambda: ws.set_stage("nope", 1, "Staging"),
    }
    for label, call in calls.items():
        with pytest.raises(wb.NotFoundError, match="'nope'"):
            call()
    for call in (lambda: ws.get_model_version("credit-default", 9), lambda: ws.load_model("credit-default", 9),
                 lambda: ws.set_stage("credit-default", 9, "Staging"), lambda: ws.get_model_version("credit-default", "gold")):
        with pytest.raises(wb.NotFoundError, match="credit-default"):
            call()
    with pytest.raises(wb.NotFoundError):
        ws.register_model({"w": 1}, "credit-default", run_id="no-such-run")
    assert ws.models().row(0, named=True)["n_versions"] == 3


def test_reviewer_cannot_register_or_change_stage(op, store_path, ws, three, models):
    op.add_user("rita", "reviewer")
    rita = wb.connect(store_path, user="rita")
    for call in (lambda: rita.register_model(models[0], "credit-default"),
                 lambda: rita.set_stage("credit-default", 1, "Staging"),
                 lambda: rita.set_alias("credit-default", "champion", 1),
                 lambda: rita.update_model("credit-default", risk_tier="low")):
        with pytest.raises(wb.PermissionDenied, match="reviewer"):
            call()
    assert rita.models().row(0, named=True)["n_versions"] == 3  # but may view
    assert _stages(rita) == {1: "None", 2: "None", 3: "None"}
