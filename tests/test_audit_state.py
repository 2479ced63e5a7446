"""The tables are a projection of the chain: `audit verify` replays the events and names every
row changed behind the workbench's back; `load_model` trusts the digest the chain recorded;
model files are skops unless pickle is asked for.

Every tampering case goes through raw SQL (tests/_raw.py), so on both backends.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import polars as pl
import pytest
from _raw import raw_sql
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.reports import documents as reports
from workbench.store import artifacts, audit, audit_replay, headmark
from workbench.store.connection import is_postgres


@pytest.fixture
def cora(op, store_path):
    op.add_user("cora", "compliance_officer")
    return wb.connect(store_path, user="cora")


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    return LogisticRegression().fit(X, X[:, 0] > 0)


def _world(ws, op, store_path, model, *, runs: int = 3):
    """Runs with params and metric curves, a model with two versions, an alias, a stage, drift
    evidence, an admin and a disabled user: one of each kind of state the chain vouches for."""
    ids = []
    for i in range(runs):
        with ws.start_run("exp", name=f"r{i}") as run:
            run.log_params({"lr": 0.1 * (i + 1), "model": "logreg"})
            for step in range(5):
                run.log_metrics({"loss": 1.0 / (step + 1), "auc": 0.6 + 0.01 * step}, step=step)
            run.log_metrics({"nan": float("nan"), "neg_zero": -0.0})
            ids.append(run.run_id)
            if i == 0:
                v1 = run.register_model(model, "credit", risk_tier="high")
    v2 = ws.register_model(model, "credit")
    ws.set_stage("credit", v1.version, "Staging")
    ws.set_alias("credit", "candidate", v1.version)
    rng = np.random.default_rng(1)
    ref = pl.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    report = ws.drift(ref, ref.with_columns(pl.col("a") + 3), model_version=v1)
    op.add_user("ada", "admin")
    op.add_user("rex", "reviewer")
    wb.connect(store_path, user="ada").set_user_disabled("rex", True)
    return ids, v1, v2, report


def _tamper(ws, store_path, sql, params=None):
    ws.close()  # the store is shared by every workspace of this process: the file is free now
    return raw_sql(store_path, sql, params)


def _problems(cora) -> list[str]:
    check = cora.verify_audit()
    assert not check.ok
    assert check.first_broken_seq is None  # the chain itself is intact
    assert check.problems and check.reason.startswith("the tables disagree with the audit trail: ")
    return list(check.problems)


def test_an_untouched_store_agrees_with_its_chain(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    check = cora.verify_audit()
    assert check.ok, check.problems
    assert check.problems == () and check.warnings == ()


def test_an_emptied_chain_beside_full_tables_fails(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model, runs=39)
    _tamper(ws, store_path, "delete from audit_events")
    raw_sql(store_path, "delete from audit_head")
    check = cora.verify_audit()
    assert not check.ok and check.n_events == 0
    assert check.problems[0].startswith("the audit chain is empty, but the tables hold 4 users, 39 runs, "
                                        "1 registered models, 2 model versions, 1 evidence")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "audit", "verify", "--store", str(store_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stdout
    assert "the audit chain is empty" in out.stderr and "OK" not in out.stdout


def test_a_user_made_admin_in_the_table_is_named(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update users set role = 'admin' where name = 'dana'")
    assert _problems(cora) == ["users 'dana': role is 'admin' in the table, 'data_scientist' in the audit trail"]


def test_a_disabled_user_enabled_in_the_table_is_named(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update users set disabled = false where name = 'rex'")
    assert _problems(cora) == ["users 'rex': disabled is False in the table, True in the audit trail"]


def test_a_user_added_in_the_table_is_named(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    _tamper(ws, store_path, "insert into users (id, name, role, disabled, failed_logins, created_at) "
                            "values (999, 'mallory', 'admin', false, 0, current_timestamp)")
    assert _problems(cora) == ["users 'mallory': in the table, but no audit event created it"]


def test_a_changed_metric_value_is_named_by_run(ws, op, cora, store_path, model):
    ids, *_ = _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update metrics set value = 0.99 where run_id = ? and key = 'auc' and step = 4", [ids[1]])
    problems = _problems(cora)
    assert len(problems) == 1
    assert problems[0].startswith(f"metrics of run {ids[1]}: the points' values, keys or steps differ from those logged")


def test_a_changed_metric_step_or_a_deleted_point_is_named(ws, op, cora, store_path, model):
    ids, *_ = _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update metrics set step = 40 where run_id = ? and key = 'loss' and step = 4", [ids[0]])
    raw_sql(store_path, "delete from metrics where run_id = ? and key = 'loss' and step = 0", [ids[2]])
    problems = sorted(_problems(cora), key=lambda p: p.startswith(f"metrics of run {ids[2]}"))
    assert len(problems) == 2
    assert problems[0].startswith(f"metrics of run {ids[0]}: the points' values")
    assert problems[1] == f"metrics of run {ids[2]}: 11 points in the table, 12 in the audit trail"


def test_a_changed_param_is_named(ws, op, cora, store_path, model):
    ids, *_ = _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update params set value = 'gbm' where run_id = ? and key = 'model'", [ids[2]])
    raw_sql(store_path, "delete from params where run_id = ? and key = 'lr'", [ids[0]])
    assert sorted(_problems(cora)) == sorted([
        f"params of run {ids[2]}, 'model': 'gbm' in the table, 'logreg' in the audit trail",
        f"params of run {ids[0]}, 'lr': absent in the table, '0.1' in the audit trail"])


def test_an_evidence_verdict_flipped_in_the_table_is_named(ws, op, cora, store_path, model):
    *_, report = _world(ws, op, store_path, model)
    assert report.verdict == "fail"
    _tamper(ws, store_path, "update evidence set verdict = 'pass' where id = ?", [report.evidence_id])
    assert _problems(cora) == [f"evidence id {report.evidence_id}: verdict is 'pass' in the table, "
                               "'fail' in the audit trail"]


def test_stage_alias_risk_tier_and_digest_edits_are_named(ws, op, cora, store_path, model):
    _, v1, v2, _ = _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update model_versions set stage = 'Production' where version = ?", [v2.version])
    raw_sql(store_path, "update model_aliases set version = ? where alias = 'candidate'", [v2.version])
    raw_sql(store_path, "update registered_models set risk_tier = 'low' where name = 'credit'")
    raw_sql(store_path, "update model_versions set sha256 = ? where version = ?", ["ab" * 32, v1.version])
    assert sorted(_problems(cora)) == sorted([
        "model_versions credit v2: stage is 'Production' in the table, 'None' in the audit trail",
        "model_aliases credit alias 'candidate': version is 2 in the table, 1 in the audit trail",
        "registered_models 'credit': risk_tier is 'low' in the table, 'high' in the audit trail",
        f"model_versions credit v1: sha256 is '{'ab' * 32}' in the table, '{v1.sha256}' in the audit trail"])


def test_a_cut_tail_of_state_changes_is_found_without_an_anchor(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    ws.set_alias("credit", "shadow", 2)
    (seq, prev_hash), = _tamper(ws, store_path, "select seq, prev_hash from audit_events where action = 'model.alias' "
                                                "and payload like '%shadow%'")
    raw_sql(store_path, "delete from audit_events where seq >= ?", [seq])
    raw_sql(store_path, "update audit_head set seq = ?, hash = ?", [seq - 1, prev_hash])
    assert _problems(cora) == ["model_aliases credit alias 'shadow': in the table, but no audit event created it"]


def test_the_cli_and_the_validation_pack_name_the_rows(ws, op, cora, store_path, model):
    _world(ws, op, store_path, model)
    _tamper(ws, store_path, "update users set role = 'admin' where name = 'dana'")
    raw_sql(store_path, "update model_versions set stage = 'Production' where version = 2")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "audit", "verify", "--store", str(store_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "the tables disagree with the audit trail" in out.stderr
    assert "users 'dana': role is 'admin' in the table, 'data_scientist' in the audit trail" in out.stderr
    assert "model_versions credit v2: stage is 'Production' in the table, 'None' in the audit trail" in out.stderr
    op.add_user("lee", "lead")
    pack = reports.build(wb.connect(store_path, user="lee"), "validation", "credit", 1)
    assert pack["audit_check"]["ok"] is False and len(pack["audit_check"]["problems"]) == 2


def _as_before_digests(store_path):
    """Rewrite the chain as a store written before metric digests existed: the run.log_metrics
    payloads lose their digest, and every hash after is recomputed (a consistent old chain)."""
    rows = raw_sql(store_path, "select seq, ts, actor, role, action, entity_type, entity_id, payload from audit_events "
                               "order by seq")
    prev = audit.GENESIS
    for seq, ts, actor, role, action, et, eid, payload in rows:
        if action == "run.log_metrics":
            p = json.loads(payload)
            del p["digest"]
            payload = audit.canonical_json(p)
        h = audit.event_hash(prev, seq, ts, audit.Event(actor, role, action, et, eid, {}), payload)
        raw_sql(store_path, "update audit_events set payload = ?, prev_hash = ?, hash = ? where seq = ?",
                [payload, prev, h, seq])
        prev = h
    raw_sql(store_path, "update audit_head set seq = ?, hash = ?", [len(rows), prev])
    if not is_postgres(str(store_path)):  # nor did such a store have a head mark beside its file
        headmark.path_of(pathlib.Path(store_path)).unlink()


def test_runs_logged_before_digests_are_checked_by_count_and_said_so(ws, op, cora, store_path):
    with ws.start_run("exp") as run:
        run.log_metrics({"auc": 0.7}, step=0)
        run.log_metrics({"auc": 0.8}, step=1)
    first = cora.audit_events(action="run.log_metrics")["seq"].min()
    ws.close()
    _as_before_digests(store_path)
    check = cora.verify_audit()
    assert check.ok and check.warnings == (
        f"cannot check the metric values of 1 run(s) logged before metric digests were recorded (events from seq "
        f"{first}); their point counts match",)
    raw_sql(store_path, "delete from metrics where step = 1")
    assert _problems(cora) == [f"metrics of run {run.run_id}: 1 points in the table, 2 in the audit trail"]


def test_point_digest_is_a_sum_over_points_in_any_order():
    keys, steps, values = ["a", "b", "a", "c"], [0, 0, 1, 2**63 - 1], [0.5, float("nan"), -0.0, float("inf")]
    whole = audit_replay.points_digest(keys, steps, values)
    parts = [audit_replay.points_digest([k], [s], [v]) for k, s, v in zip(keys, steps, values)]
    assert whole == sum(parts) % audit_replay.MOD
    assert audit_replay.points_digest(keys[::-1], steps[::-1], values[::-1]) == whole
    # an independent computation of one point: sha256(key bytes + step int64 + value float64), big-endian
    import hashlib
    import struct

    one = hashlib.sha256(b"a" + struct.pack(">q", 1) + struct.pack(">d", -0.0)).digest()
    assert parts[2] == int.from_bytes(one, "big")
    assert audit_replay.points_digest(["a"], [1], [0.0]) != parts[2]  # the sign of zero counts
    nan_bits = struct.unpack(">d", bytes.fromhex("fff8000000000001"))[0]  # another NaN
    assert audit_replay.points_digest(["b"], [0], [nan_bits]) == parts[1]


# -- load_model and model files ---------------------------------------------------------------
class _Booby:
    """Unpickling this creates a marker file: proof the bytes were unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_model_file_swapped_with_its_digest_in_the_table_is_never_loaded(ws, op, cora, store_path, model, tmp_path):
    with ws.start_run("exp") as run:
        mv = run.register_model(model, "credit")
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Booby(marker))
    digest, _ = artifacts.put_bytes(ws.store.artifact_root, evil)  # the attacker's file, at its own address
    _tamper(ws, store_path, "update model_versions set sha256 = ?, size = ? where version = 1", [digest, len(evil)])
    for load in (lambda: ws.load_model("credit", 1), lambda: ws.load_model("credit", 1, allow_pickle=True)):
        with pytest.raises(wb.IntegrityError) as err:
            load()
        assert f"registry's model digest ({digest[:12]}...) is not the one recorded in the audit trail" in str(err.value)
        assert mv.sha256[:12] in str(err.value)
    assert not marker.exists()
    assert _problems(cora) == [f"model_versions credit v1: sha256 is '{digest}' in the table, '{mv.sha256}' in the "
                               "audit trail"]


def test_a_registration_event_edited_in_place_is_not_trusted(ws, op, store_path, model, tmp_path):
    ws.register_model(model, "credit")
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Booby(marker))
    digest, _ = artifacts.put_bytes(ws.store.artifact_root, evil)
    (payload,), = _tamper(ws, store_path, "select payload from audit_events where action = 'model_version.create'")
    forged = audit.canonical_json({**json.loads(payload), "sha256": digest, "format": "pickle"})
    raw_sql(store_path, "update audit_events set payload = ? where action = 'model_version.create'", [forged])
    raw_sql(store_path, "update model_versions set sha256 = ? where version = 1", [digest])
    with pytest.raises(wb.IntegrityError, match="was altered"):
        ws.load_model("credit", 1, allow_pickle=True)
    assert not marker.exists()


def test_sklearn_models_are_saved_with_skops_and_load_without_pickle(ws, model):
    mv = ws.register_model(model, "credit")
    path = artifacts.path_for(ws.store.artifact_root, mv.sha256)
    assert zipfile.is_zipfile(path)  # a skops file, not a pickle
    with zipfile.ZipFile(path) as z:
        assert "schema.json" in z.namelist()
    loaded = ws.load_model("credit", 1)
    X = np.random.default_rng(2).normal(size=(50, 2))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


class Custom:
    """A model type skops cannot load without trusting this module's code."""

    def __init__(self, w):
        self.w = w

    def predict(self, X):
        return np.asarray(X) @ self.w


def test_pickle_only_on_explicit_opt_in_at_both_ends(ws, op):
    with pytest.raises(wb.ValidationError, match="format='pickle'") as err:
        ws.register_model(Custom([1.0]), "custom")
    assert "test_audit_state.Custom" in str(err.value)
    assert ws.models().is_empty()  # nothing of the refused call is stored
    with pytest.raises(wb.ValidationError, match="'json'"):
        ws.register_model(Custom([1.0]), "custom", format="json")
    mv = ws.register_model(Custom([1.0, 2.0]), "custom", format="pickle")
    with pytest.raises(wb.PermissionDenied, match="allow_pickle=True"):
        ws.load_model("custom", mv.version)
    assert ws.load_model("custom", mv.version, allow_pickle=True).w == [1.0, 2.0]
    events = [json.loads(p) for p in op.audit_events(action="model_version.create")["payload"]]
    assert [e["format"] for e in events] == ["pickle"]


def test_a_pickled_model_refused_without_opt_in_is_never_unpickled(ws, tmp_path):
    marker = tmp_path / "unpickled"
    mv = ws.register_model(_Booby(marker), "booby", format="pickle")
    assert not marker.exists()
    with pytest.raises(wb.PermissionDenied):
        ws.load_model("booby", mv.version)
    assert not marker.exists()
    ws.load_model("booby", mv.version, allow_pickle=True)  # control: opted in, the file's code runs
    assert marker.exists()
