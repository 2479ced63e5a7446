"""PostgreSQL only: the write lock many processes share, its timeout, its indexes, schema
migration in place, and ``workbench migrate`` from a DuckDB file.

Runs in the PostgreSQL pass of ``make test`` (WORKBENCH_TEST_PG); the rest of the suite runs
there too, against the same backend. DuckDB's counterparts (the file lock) are in test_store.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import _demo_store
import psycopg
import pytest
import sqlalchemy as sa
from _raw import raw_sql
from conftest import _forget

import workbench as wb
from workbench.store import artifacts, schema
from workbench.store.connection import Store
from workbench.workspace import operator_workspace

pytestmark = pytest.mark.postgres


class _HeadHolder:
    """Another session that holds the audit head's row lock (as a long write would) until released."""

    def __init__(self, url: str, seconds: float):
        dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.con = psycopg.connect(dsn, application_name="holder-under-test")
        self.pid = self.con.execute("select pg_backend_pid()").fetchone()[0]
        self.con.execute("select seq from audit_head where id = 1 for update")
        self.done = threading.Event()
        self._timer = threading.Timer(seconds, self.release)
        self._timer.start()

    def release(self) -> None:
        if not self.done.is_set():
            self.done.set()
            self.con.commit()
            self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        self.release()


def test_a_write_waits_for_another_writer_then_succeeds(ws, store_path):
    with _HeadHolder(str(store_path), 2.0):
        t0 = time.monotonic()
        with ws.start_run("exp") as run:
            run.log_params({"model": "rf"})
            run.log_metrics({"auc": 0.75})
        ws.flush()
        waited = time.monotonic() - t0
    assert waited >= 1.0  # it really waited for the holder's commit
    info = ws.get_run(run.run_id)
    assert info["status"] == "FINISHED" and info["params"] == {"model": "rf"} and info["metrics"] == {"auc": 0.75}


def test_lock_timeout_names_the_other_writer_and_the_workspace_works_after(op, store_path):
    op.add_user("dana", "data_scientist")
    ws = wb.connect(store_path, user="dana", lock_timeout=1)
    with _HeadHolder(str(store_path), 30) as holder:
        t0 = time.monotonic()
        with pytest.raises(wb.StoreLockedError) as err:
            ws.start_run("exp")
        elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 5
    msg = str(err.value)
    assert f"PostgreSQL process {holder.pid}" in msg and "holder-under-test" in msg
    assert "password" not in msg and "workbench:workbench@" not in msg  # the URL is shown without it
    with ws.start_run("exp") as run:  # the holder is gone: the same workspace writes again
        run.log_metrics({"a": 1.0})
    assert ws.get_run(run.run_id)["status"] == "FINISHED"


def test_a_run_held_back_by_a_lock_timeout_is_kept_and_saved_by_the_next_flush(op, store_path):
    op.add_user("dana", "data_scientist")
    quick = wb.connect(store_path, user="dana", lock_timeout=1)
    quick._experiment_id("exp", create=True)
    with _HeadHolder(str(store_path), 3):
        with pytest.raises(wb.StoreLockedError):  # the end waits for its commit: it says so at once
            with quick.start_run("exp", name="patient") as run:
                run.log_params({"lr": 0.1})
                run.log_metrics({"auc": 0.8})
        with pytest.raises(wb.StoreLockedError):  # kept, tried again, still held
            quick.flush()
    quick.flush()  # the same batch is written now; nothing was dropped
    runs = quick.search_runs(experiment="exp")
    assert runs["run_name"].to_list() == ["patient"] and runs["status"].to_list() == ["FINISHED"]
    assert runs["params.lr"].to_list() == ["0.1"] and runs["metrics.auc"].to_list() == [0.8]
    assert quick.get_run(run.run_id)["metrics"] == {"auc": 0.8}


def test_indexes_for_charts_and_entity_history_exist_and_are_used(ws, store_path):
    names = {r[0] for r in raw_sql(store_path, "select indexname from pg_indexes where schemaname = current_schema()")}
    assert {"ix_metrics_run_key_step", "ix_audit_events_entity"} <= names
    # 200k points of other runs: reading two runs' curves must not scan them all
    raw_sql(store_path, "insert into metrics select 'other' || (i % 400), 'loss', random(), i, now() "
                        "from generate_series(1, 200000) i")
    raw_sql(store_path, "analyze metrics")
    plan = "\n".join(r[0] for r in raw_sql(
        store_path, "explain select step, value from metrics where run_id = any(?::text[]) and key = ? order by step",
        [["other1", "other2"], "loss"]))
    assert "ix_metrics_run_key_step" in plan and "Seq Scan on metrics" not in plan, plan


def test_an_older_store_gains_new_columns_and_indexes_in_place(ws, store_path):
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    ws.close()
    _forget(store_path)
    raw_sql(store_path, "drop index ix_metrics_run_key_step")
    raw_sql(store_path, "alter table store_info drop column artifact_root")
    raw_sql(store_path, "update store_info set schema_version = 6")
    reopened = wb.connect(store_path, user="dana")
    assert reopened.store.scalar("select schema_version from store_info") == schema.SCHEMA_VERSION
    assert raw_sql(store_path, "select artifact_root from store_info") == [(None,)]
    assert raw_sql(store_path, "select 1 from pg_indexes where indexname = 'ix_metrics_run_key_step'") == [(1,)]
    assert reopened.get_run(run.run_id)["metrics"] == {"a": 1.0}  # the data is as it was
    events = raw_sql(store_path, "select action, payload from audit_events order by seq desc limit 1")
    assert events[0][0] == "store.migrate" and '"from":6' in events[0][1]
    assert operator_workspace(store_path).verify_audit().ok


def _table_counts(location) -> dict[str, int]:
    from sqlmodel import SQLModel

    store = Store(location)
    try:
        return {t.name: store.scalar(f"select count(*) from {t.name}") for t in SQLModel.metadata.sorted_tables}
    finally:
        store.close()


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file directly in ``folder`` (a store file and its WAL, if any)."""
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_migrate_copies_the_demo_store_with_the_same_audit_head(store_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_ARTIFACTS")  # the copy must find the files through the store itself
    source = _demo_store.demo_copy()
    src = wb.connect(source, user="casey")
    src_head = src.verify_audit()
    src_runs = src.search_runs("metrics.roc_auc > 0.7").sort("run_id")["run_id"].to_list()
    src_model = src.models()
    src.close()
    _forget(source)
    files_before = sorted(p.name for p in source.with_suffix(".artifacts").rglob("*") if p.is_file())
    counts_before = _table_counts(source)
    _forget(source)
    bytes_before = _digests(source.parent)

    done = _demo_store.run_cli("migrate", "--from", source, "--to", store_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _digests(source.parent) == bytes_before  # the source was only read: the file (and any WAL) as it was
    assert f"head {src_head.head_hash}" in done.stdout and "workbench:workbench@" not in done.stdout + done.stderr
    assert str(source.with_suffix(".artifacts").resolve()) in done.stdout

    # every table, row for row; the chain verifies with the source's head
    assert _table_counts(store_path) == counts_before
    casey = wb.connect(store_path, user="casey")
    check = casey.verify_audit()
    assert check.ok and (check.n_events, check.head_hash) == (src_head.n_events, src_head.head_hash)
    # the same answers, through the same artifact files (referenced, not copied)
    assert casey.search_runs("metrics.roc_auc > 0.7").sort("run_id")["run_id"].to_list() == src_runs
    assert casey.models().to_dicts() == src_model.to_dicts()
    assert casey.store.artifact_root == source.with_suffix(".artifacts").resolve()
    name = src_model["name"][0]
    version = casey.get_model_version(name, 1)
    assert artifacts.path_for(casey.store.artifact_root, version.sha256).exists()
    assert casey.load_model(name, 1) is not None  # read and digest-checked from the source's folder
    assert sorted(p.name for p in source.with_suffix(".artifacts").rglob("*") if p.is_file()) == files_before

    # new writes continue after the copied ids and extend the same chain
    wb.connect(store_path, user="lee").update_model(name, owner_team="platform")
    after = casey.verify_audit()
    assert after.ok and after.n_events == src_head.n_events + 1
    ids = raw_sql(store_path, "select max(id) from users")[0][0]
    operator_workspace(store_path).add_user("newcomer", "reviewer")
    assert raw_sql(store_path, "select id from users where name = 'newcomer'") == [(ids + 1,)]

    # a second migrate into the same database is refused and changes nothing
    again = _demo_store.run_cli("migrate", "--from", source, "--to", store_path, timeout=300)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr
    assert casey.verify_audit().n_events == after.n_events + 1


def test_migrate_refuses_what_it_cannot_copy(store_path, tmp_path):
    cases = [
        (("--from", store_path, "--to", store_path), "--from must be a DuckDB store"),
        (("--from", tmp_path / "none.duckdb", "--to", store_path), "no store file there"),
        (("--from", tmp_path / "none.duckdb", "--to", tmp_path / "b.duckdb"), "--to must be a PostgreSQL URL"),
    ]
    for args, message in cases:
        done = _demo_store.run_cli("migrate", *args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "none.duckdb").exists() and not (tmp_path / "b.duckdb").exists()
    assert raw_sql(store_path, "select count(*) from audit_events") == [(0,)]


def test_a_failed_copy_leaves_the_target_empty(store_path, tmp_path, monkeypatch):
    from workbench.store import migrate as migrate_store

    monkeypatch.delenv("WORKBENCH_ARTIFACTS")  # else it names both stores' folder
    source = tmp_path / "small.duckdb"
    src = operator_workspace(source)
    src.add_user("dana", "data_scientist")
    src.close()
    _forget(source)
    real = migrate_store._copy_table

    def fail_on_runs(raw_src, cur, table, batch_rows):
        if table.name == "runs":
            raise wb.StoreError("disk full (simulated)")
        return real(raw_src, cur, table, batch_rows)

    monkeypatch.setattr(migrate_store, "_copy_table", fail_on_runs)
    with pytest.raises(wb.StoreError, match="simulated"):
        migrate_store.migrate(str(source), str(store_path))
    assert raw_sql(store_path, "select count(*) from users") == [(0,)]
    assert raw_sql(store_path, "select seq from audit_head") == [(0,)]  # the new store's own row is back
    monkeypatch.setattr(migrate_store, "_copy_table", real)
    out = migrate_store.migrate(str(source), str(store_path))  # and the same target takes a copy afterwards
    assert out["tables"]["users"] == 1 and out["head"] == out["source_head"]
    assert Path(out["artifact_root"]) == source.with_suffix(".artifacts").resolve()


def test_an_empty_store_migrates_and_its_writers_still_queue_on_the_head(store_path, tmp_path, monkeypatch):
    from workbench.store import migrate as migrate_store

    monkeypatch.delenv("WORKBENCH_ARTIFACTS")
    source = tmp_path / "empty.duckdb"
    Store(source).close()  # a store with no event yet: no head row to copy
    _forget(source)
    out = migrate_store.migrate(str(source), str(store_path))
    assert out["events"] == 0 and out["head"] == out["source_head"]
    assert raw_sql(store_path, "select id, seq from audit_head") == [(1, 0)]  # the row every writer locks
    op = operator_workspace(store_path)
    op.add_user("dana", "data_scientist")
    assert op.verify_audit().n_events == 1


def _small_source(folder: Path) -> tuple[Path, str]:
    """A DuckDB store with a user and a run, closed; and the run's id."""
    source = folder / "source" / "old.duckdb"
    op = operator_workspace(source)
    op.add_user("dana", "data_scientist")
    dana = wb.connect(source, user="dana")
    with dana.start_run("exp") as run:
        run.log_params({"model": "rf"})
        run.log_metrics({"auc": 0.75})
    dana.close()
    _forget(source)
    return source, run.run_id


def test_migrate_reads_an_older_source_as_it_is_and_never_changes_it(store_path, tmp_path, monkeypatch):
    import duckdb

    monkeypatch.delenv("WORKBENCH_ARTIFACTS")
    source, run_id = _small_source(tmp_path)
    older = schema.SCHEMA_VERSION - 1
    # as a store written before store_info.artifact_root and model_card_text existed
    raw_sql(source, "alter table store_info drop column artifact_root")
    raw_sql(source, "drop table model_card_text")
    raw_sql(source, f"update store_info set schema_version = {older}")
    head = raw_sql(source, "select seq, hash from audit_head")[0]
    before = _digests(source.parent)

    done = _demo_store.run_cli("migrate", "--from", source, "--to", store_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{head[0]} events, head {head[1]}" in done.stdout, done.stdout

    assert _digests(source.parent) == before  # byte for byte, and no WAL left beside it
    con = duckdb.connect(str(source), read_only=True)
    try:  # still the older store: not upgraded, no migration event in its chain
        assert con.execute("select schema_version from store_info").fetchall() == [(older,)]
        assert con.execute("select count(*) from audit_events where action = 'store.migrate'").fetchall() == [(0,)]
    finally:
        con.close()

    # the copy holds the source's data; its first open upgrades it, in its own chain
    assert raw_sql(store_path, "select schema_version from store_info") == [(older,)]
    copy = operator_workspace(store_path)
    assert copy.store.scalar("select schema_version from store_info") == schema.SCHEMA_VERSION
    last = raw_sql(store_path, "select action, payload from audit_events order by seq desc limit 1")[0]
    assert last[0] == "store.migrate" and f'"from":{older}' in last[1]
    check = copy.verify_audit()
    assert check.ok and check.n_events == head[0] + 1
    got = wb.connect(store_path, user="dana").get_run(run_id)
    assert got["params"] == {"model": "rf"} and got["metrics"] == {"auc": 0.75}
    assert copy.store.artifact_root == source.with_suffix(".artifacts").resolve()


def test_migrate_refuses_a_source_it_cannot_read_and_leaves_it_as_it_was(store_path, tmp_path):
    import duckdb

    newer, _ = _small_source(tmp_path / "newer")
    raw_sql(newer, f"update store_info set schema_version = {schema.SCHEMA_VERSION + 1}")
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()  # another tool's database: no store_info
    cases = [(newer, f"schema version {schema.SCHEMA_VERSION + 1}", "Upgrade workbench"),
             (empty, "not a workbench store", str(empty))]
    for source, *needles in cases:
        before = _digests(source.parent)
        done = _demo_store.run_cli("migrate", "--from", source, "--to", store_path)
        assert done.returncode == 1 and done.stderr.startswith("Error: ") and "Traceback" not in done.stderr
        assert all(n in done.stderr for n in needles), done.stderr
        assert _digests(source.parent) == before
    assert raw_sql(store_path, "select count(*) from users") == [(0,)]


_LOOP_WRITER = """
import sys, time
import workbench as wb
ws = wb.connect(sys.argv[1], user="dana")
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    with ws.start_run("busy") as run:
        run.log_metrics({"a": 1.0})
    ws.flush()
"""


def test_the_chain_verifies_while_other_processes_write(op, store_path):
    # Read committed would let the head move between reading the events and reading the
    # head: before verify read one snapshot, 18 of 50 checks failed like this.
    import subprocess
    import sys

    op.add_user("dana", "data_scientist")
    op.add_user("riley", "reviewer")
    writers = [subprocess.Popen([sys.executable, "-c", _LOOP_WRITER, str(store_path), "6"], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        for w in writers:
            assert w.stdout.readline().strip() == "ready"
        riley = wb.connect(store_path, user="riley")
        seen, checks = set(), []
        while any(w.poll() is None for w in writers):
            check = riley.verify_audit()
            checks.append(check)
            seen.add(check.n_events)
    finally:
        for w in writers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in writers)
    assert len(seen) >= 3, seen  # the chain really grew while it was being checked
    assert [c.reason for c in checks if not c.ok] == []


def test_serve_never_prints_the_databases_password(store_path, tmp_path):
    from _server import serving

    url = sa.engine.make_url(str(store_path))
    assert url.password  # the PostgreSQL pass connects with one
    log = tmp_path / "serve.log"
    with serving(store_path, log) as (address, _):
        said = log.read_text()
        assert f"Dashboard on {address}" in said, said  # the banner was printed, and the server answers
    said = log.read_text()  # everything serve and Streamlit printed, up to their exit
    assert f":{url.password}@" not in said and url.render_as_string(hide_password=False) not in said, said
    assert url.render_as_string(hide_password=True) in said, said  # the store is still named, password masked
