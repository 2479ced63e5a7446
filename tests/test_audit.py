"""The audit trail: every write leaves an event, the chain verifies, tampering is found."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from _raw import raw_sql as _duck
from hypothesis import given, settings
from hypothesis import strategies as hs

import workbench as wb
from workbench.store import audit, headmark
from workbench.store.connection import is_postgres


@pytest.fixture
def cora(op, store_path):
    """A compliance officer: may view and verify the audit trail."""
    op.add_user("cora", "compliance_officer")
    return wb.connect(store_path, user="cora")


def _events(cora) -> pl.DataFrame:
    return cora.audit_events().sort("seq")


def _do_everything(ws, tmp_path):
    """One of each write a data scientist can make."""
    f = tmp_path / "notes.txt"
    f.write_text("notes")
    with ws.start_run("exp") as run:
        run.log_params({"C": 1.0})
        run.log_metrics({"auc": 0.75})
        run.set_tags({"team": "risk"})
        ds = run.log_dataset(pl.DataFrame({"x": [1, 2, 3]}), "train")
        run.log_artifact(f)
        mv = run.register_model({"weights": [1, 2, 3]}, "credit", risk_tier="high")
    ws.set_stage("credit", mv.version, "Staging")
    ws.set_alias("credit", "candidate", mv.version)  # a free alias: "champion" follows Production
    ws.update_model("credit", owner_team="risk")
    return run, ds, mv


def test_every_write_appends_its_event(ws, cora, tmp_path):
    run, ds, mv = _do_everything(ws, tmp_path)
    ev = _events(cora)
    actions = ev["action"].to_list()
    for action in ("user.add", "experiment.create", "run.start", "run.log_params", "run.log_metrics",
                   "run.set_tags", "dataset.create", "run.log_dataset", "run.log_artifact", "model.create",
                   "model_version.create", "model_version.stage", "model.alias", "model.update", "run.end"):
        assert action in actions, action
    assert actions.count("user.add") == 2  # dana and cora, by the operator
    users = ev.filter(pl.col("action") == "user.add")
    assert users["entity_id"].to_list() == ["dana", "cora"]
    assert set(users["role"]) == {"operator"}
    mine = ev.filter(pl.col("action") != "user.add")
    assert set(mine["actor"]) == {"dana"} and set(mine["role"]) == {"data_scientist"}
    run_events = ev.filter(pl.col("entity_id") == run.run_id)
    assert set(run_events["entity_type"]) == {"run"}
    assert ev.filter(pl.col("action") == "model_version.create")["entity_id"].to_list() == [f"credit/{mv.version}"]
    assert ev["seq"].to_list() == list(range(1, ev.height + 1))
    assert all(ts.tzinfo is not None for ts in ev["ts"].to_list())
    assert ev.height == ws.counts()["audit_events"]


def test_events_are_in_the_order_things_happened(ws, cora):
    with ws.start_run("exp") as run:
        run.log_params({"a": 1})
        run.log_metrics({"m": 1.0})
        run.set_tags({"t": "x"})
    actions = _events(cora).filter(pl.col("entity_id") == run.run_id)["action"].to_list()
    assert actions[0] == "run.start"
    assert actions[-1] == "run.end", actions  # nothing is logged to a run after it ended
    assert sorted(actions) == sorted(["run.start", "run.log_params", "run.log_metrics", "run.set_tags", "run.end"])


def test_payloads_are_canonical_json_without_secrets(op, cora, store_path):
    op.add_user("erin", "reviewer", "s3cret-passphrase")
    ev = _events(cora).filter(pl.col("entity_id") == "erin").row(0, named=True)
    payload = json.loads(ev["payload"])
    assert payload == {"role": "reviewer", "password_set": True}
    assert ev["payload"] == json.dumps(payload, sort_keys=True, separators=(",", ":"))
    text = " ".join(str(v) for v in ev.values())
    assert "s3cret" not in text


def test_nan_metric_events_still_verify(ws, cora):
    with ws.start_run("exp") as run:
        run.log_metrics({"nan": float("nan"), "inf": float("inf")})
        run.set_tags({"note": "ünïcode ✓"})
    assert cora.verify_audit().ok


def test_refused_writes_leave_no_event(ws, op, cora, store_path):
    with ws.start_run("exp") as run:
        run.log_params({"lr": 0.1})
    ws.register_model({"w": 1}, "m")
    before = cora.counts()["audit_events"]
    op.add_user("rita", "reviewer")
    rita = wb.connect(store_path, user="rita")
    after_add = cora.counts()["audit_events"]
    assert after_add == before + 1
    refused = [
        (wb.PermissionDenied, lambda: rita.start_run("exp")),
        (wb.PermissionDenied, lambda: ws.add_user("mallory", "admin")),
        (wb.PermissionDenied, lambda: ws.set_stage("m", 1, "Production")),
        (wb.ValidationError, lambda: ws.register_model({"w": 2}, "m2", risk_tier="extreme")),
        (wb.ValidationError, lambda: ws.update_model("m", risk_tier="extreme")),
        (wb.ValidationError, lambda: op.add_user("rita", "reviewer")),  # exists already
        (wb.ValidationError, lambda: op.add_user("bad name!", "reviewer")),
        (wb.NotFoundError, lambda: ws.set_alias("m", "champion", 5)),
    ]
    for exc, call in refused:
        with pytest.raises(exc):
            call()
    with ws.start_run("exp2") as r2:
        with pytest.raises(wb.ValidationError):
            r2.log_metrics({"bad": "x"})
        r2.log_params({"a": 1})
        with pytest.raises(wb.ValidationError):
            r2.log_params({"a": 2})
    n_r2 = _events(cora).filter(pl.col("entity_id") == r2.run_id)["action"].to_list()
    assert sorted(n_r2) == ["run.end", "run.log_params", "run.start"]
    assert cora.verify_audit().ok
    assert sorted(cora.users()["name"].to_list()) == ["cora", "dana", "rita"]


def test_unknown_role_is_a_validation_error_and_leaves_no_event(op, cora):
    before = cora.counts()["audit_events"]
    with pytest.raises(wb.ValidationError, match="'superuser'") as err:
        op.add_user("sam", "superuser")
    assert "data_scientist" in str(err.value)
    assert cora.counts()["audit_events"] == before
    assert "sam" not in cora.users()["name"].to_list()


def test_verify_on_an_untouched_chain(ws, cora, tmp_path):
    _do_everything(ws, tmp_path)
    check = cora.verify_audit()
    ev = _events(cora)
    assert check.ok and check.first_broken_seq is None
    assert check.n_events == ev.height > 10
    assert check.head_hash == ev["hash"].to_list()[-1]
    assert ev["prev_hash"].to_list()[0] == audit.GENESIS
    assert ev["prev_hash"].to_list()[1:] == ev["hash"].to_list()[:-1]


def _tamper(ws, store_path, sql, params=None):
    ws.close()  # the store is shared by every workspace of this process: the file is free now
    _duck(store_path, sql, params)


def test_altered_payload_is_found_at_its_seq(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    ev = _events(cora)
    target = ev.filter(pl.col("action") == "model.create")["seq"][0]
    _tamper(ws, store_path, "update audit_events set payload = ? where seq = ?",
            ['{"owner_team":null,"risk_tier":"low"}', target])
    check = cora.verify_audit()
    assert not check.ok
    assert check.first_broken_seq == target
    assert "altered" in check.reason
    assert check.n_events == target - 1


def test_altered_actor_is_found(ws, cora, store_path):
    with ws.start_run("exp") as run:
        run.log_params({"a": 1})
    target = _events(cora).filter(pl.col("action") == "run.start")["seq"][0]
    _tamper(ws, store_path, "update audit_events set actor = 'someone-else' where seq = ?", [target])
    check = cora.verify_audit()
    assert not check.ok and check.first_broken_seq == target


def test_rehashed_event_breaks_the_link_to_the_next(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    ev = _events(cora)
    row = ev.filter(pl.col("action") == "model.create").row(0, named=True)
    forged_payload = '{"risk_tier":"low"}'
    e = audit.Event(row["actor"], row["role"], row["action"], row["entity_type"], row["entity_id"], {})
    forged_hash = audit.event_hash(row["prev_hash"], row["seq"], row["ts"], e, forged_payload)
    _tamper(ws, store_path, "update audit_events set payload = ?, hash = ? where seq = ?",
            [forged_payload, forged_hash, row["seq"]])
    check = cora.verify_audit()
    assert not check.ok
    assert check.first_broken_seq == row["seq"] + 1
    assert "prev_hash" in check.reason


def test_deleted_event_is_detected(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    ev = _events(cora)
    target = ev.filter(pl.col("action") == "run.log_params")["seq"][0]
    assert target < ev["seq"].max()
    _tamper(ws, store_path, "delete from audit_events where seq = ?", [target])
    check = cora.verify_audit()
    assert not check.ok
    assert check.first_broken_seq in (target, target + 1)
    assert "missing" in check.reason


def test_data_scientist_may_not_read_the_audit_trail(ws):
    # ARCHITECTURE.md roles table and roles.PERMISSIONS["audit_view"]: data scientists have no access
    with ws.start_run("exp"):
        pass
    with pytest.raises(wb.PermissionDenied):
        ws.audit_events()
    with pytest.raises(wb.PermissionDenied):
        ws.verify_audit()


def test_reordered_events_are_found(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    ev = _events(cora)
    a, b = ev.filter(pl.col("action") == "run.start")["seq"][0], ev.filter(pl.col("action") == "model.create")["seq"][0]
    # swap the two events' content, each keeping the other's seq
    _tamper(ws, store_path, f"""
        update audit_events set seq = -1 where seq = {a};
        update audit_events set seq = {a} where seq = {b};
        update audit_events set seq = {b} where seq = -1""")
    check = cora.verify_audit()
    assert not check.ok and check.first_broken_seq == min(a, b)


def test_a_truncated_tail_is_found_by_the_head(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    n = cora.verify_audit().n_events
    _tamper(ws, store_path, "delete from audit_events where seq > ?", [n - 3])
    check = cora.verify_audit()
    assert not check.ok and check.first_broken_seq == n - 2
    assert f"ends at event {n - 3} but its head is event {n}" in check.reason


def _rewrite_whole_chain(store_path, new_actor: str) -> None:
    """The strongest attacker: rewrites every event and rehashes the chain and its head."""
    rows = _duck(store_path, "select seq, ts, actor, role, action, entity_type, entity_id, payload from audit_events order by seq")
    prev = audit.GENESIS
    for seq, ts, actor, role, action, et, eid, payload in rows:
        e = audit.Event(new_actor, role, action, et, eid, {})
        h = audit.event_hash(prev, seq, ts, e, payload)
        _duck(store_path, "update audit_events set actor = ?, prev_hash = ?, hash = ? where seq = ?", [new_actor, prev, h, seq])
        prev = h
    _duck(store_path, "update audit_head set seq = ?, hash = ?", [len(rows), prev])
    _forge_head_mark(store_path, len(rows), prev)


def _forge_head_mark(store_path, seq: int, digest: str) -> None:
    """The head mark beside a DuckDB file is as writable as the file: the strongest attacker rewrites it too."""
    if not is_postgres(str(store_path)):
        headmark.write(Path(store_path), seq, digest)


def test_a_rewritten_and_rehashed_chain_is_found_only_with_an_anchor(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    mark = cora.audit_anchor()
    assert mark["seq"] == cora.verify_audit().n_events
    ws.close()
    _rewrite_whole_chain(store_path, "mallory")
    assert cora.verify_audit().ok  # consistent in itself: without the anchor nothing shows
    check = cora.verify_audit(mark)
    assert not check.ok and check.first_broken_seq == mark["seq"] and "no longer passes through the anchor" in check.reason


def test_anchor_also_finds_truncation_below_it(ws, cora, store_path, tmp_path):
    _do_everything(ws, tmp_path)
    cora.audit_export("csv")  # two events at the tail that change no table the chain is checked against
    cora.audit_export("json")
    mark = cora.audit_anchor()
    ws.close()
    # cut the tail and move the head back: consistent, but shorter than the anchor (a cut that
    # removes state-changing events is found without an anchor: tests/test_audit_state.py)
    rows = _duck(store_path, "select seq, hash from audit_events where seq = ?", [mark["seq"] - 2])
    _duck(store_path, "delete from audit_events where seq > ?", [mark["seq"] - 2])
    _duck(store_path, "update audit_head set seq = ?, hash = ?", [rows[0][0], rows[0][1]])
    if not is_postgres(str(store_path)):
        assert not cora.verify_audit().ok  # the head mark beside the file still knows the last commit ...
    _forge_head_mark(store_path, rows[0][0], rows[0][1])  # ... unless it is rewritten too
    assert cora.verify_audit().ok
    check = cora.verify_audit(mark)
    assert not check.ok and "before the anchor's event" in check.reason


def test_cli_anchor_verify_and_export(ws, cora, store_path, tmp_path):
    import subprocess
    import sys

    _do_everything(ws, tmp_path)
    ws.close()
    cli = [sys.executable, "-m", "workbench.cli"]
    anchor_file = tmp_path / "head.json"
    out = subprocess.run([*cli, "audit", "anchor", "--out", str(anchor_file), "--store", str(store_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ok = subprocess.run([*cli, "audit", "verify", "--anchor", str(anchor_file), "--store", str(store_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "passes through the anchor" in ok.stdout
    _rewrite_whole_chain(store_path, "mallory")
    bad = subprocess.run([*cli, "audit", "verify", "--anchor", str(anchor_file), "--store", str(store_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no longer passes through the anchor" in bad.stderr
    anchor_file.write_text("{not json")
    garbled = subprocess.run([*cli, "audit", "verify", "--anchor", str(anchor_file), "--store", str(store_path)],
                             capture_output=True, text=True)
    assert garbled.returncode == 1 and "not an audit anchor file" in garbled.stderr and "Traceback" not in garbled.stderr

    csv_file, json_file = tmp_path / "events.csv", tmp_path / "events.json"
    for fmt, f in (("csv", csv_file), ("json", json_file)):
        res = subprocess.run([*cli, "audit", "export", "--format", fmt, "--out", str(f), "--action", "run.*",
                              "--store", str(store_path)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    exported = json.loads(json_file.read_text())
    assert exported and all(e["action"].startswith("run.") for e in exported)
    assert list(exported[0]) == sorted(exported[0])  # stable keys
    assert pl.read_csv(csv_file)["seq"].to_list() == [e["seq"] for e in exported]
    bad_fmt = subprocess.run([*cli, "audit", "export", "--format", "xml", "--out", str(tmp_path / "x"),
                              "--store", str(store_path)], capture_output=True, text=True)
    assert bad_fmt.returncode == 1 and "format must be 'csv' or 'json'" in bad_fmt.stderr


def test_filters_and_the_audited_export(ws, cora, op, store_path, tmp_path):
    run, _, mv = _do_everything(ws, tmp_path)
    assert set(cora.audit_events(actor="dana")["actor"]) == {"dana"}
    assert set(cora.audit_events(action="model.*")["action"]) <= {"model.create", "model.update", "model.register",
                                                                  "model.stage", "model.alias", "model_version.stage"}
    assert set(cora.audit_events(entity=run.run_id)["entity_id"]) == {run.run_id}
    assert cora.audit_events(since="2999-01-01").is_empty()
    with pytest.raises(wb.ValidationError, match="Not an ISO date"):
        cora.audit_events(since="last tuesday")
    data = cora.audit_export("json", actor="dana")
    assert {e["actor"] for e in json.loads(data)} == {"dana"}
    export = cora.audit_events(action="audit.export").row(0, named=True)
    assert json.loads(export["payload"])["sha256"] == audit.hashlib.sha256(data).hexdigest()
    with pytest.raises(wb.PermissionDenied):
        wb.connect(store_path, user="dana").audit_export("csv")


@settings(max_examples=200, deadline=None)
@given(seq=hs.integers(1, 2**53), micro=hs.integers(0, 999_999), secs=hs.integers(0, 3_000_000_000),
       text=hs.lists(hs.text(), min_size=6, max_size=6))
def test_the_fast_hash_is_the_canonical_json_of_the_event(seq, micro, secs, text):
    import hashlib
    from datetime import datetime, timezone

    ts = datetime.fromtimestamp(secs, timezone.utc).replace(microsecond=micro)
    actor, role, action, et, eid, payload = text
    body = audit.canonical_json({"seq": seq, "ts": ts.isoformat(), "actor": actor, "role": role, "action": action,
                                 "entity_type": et, "entity_id": eid, "payload": payload})
    expected = hashlib.sha256((audit.GENESIS + body).encode()).hexdigest()
    assert audit.event_hash(audit.GENESIS, seq, ts, audit.Event(actor, role, action, et, eid, {}), payload) == expected
    # and the column-at-a-time ISO text that verify uses is Python's isoformat
    assert pl.select(audit._iso(pl.lit(ts).cast(pl.Datetime("us", "UTC")))).item() == ts.isoformat()
