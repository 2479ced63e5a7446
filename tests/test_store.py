"""The store file: where it lives, what it refuses, and how it shares the file with others."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa
from _raw import raw_sql as _duck

import workbench as wb
from workbench.people import auth
from workbench.store import schema, shared
from workbench.store.connection import Store
from workbench.workspace import operator_workspace


def _release(path: Path) -> None:
    """Close this process's Store for ``path`` and forget it, so the file is free."""
    shared.close(path)


_OPEN = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(c.sql(sys.argv[2]).fetchall()); c.close()"
_HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
         "time.sleep(float(sys.argv[2])); c.close()")


def _open_elsewhere(path: Path, sql: str = "select count(*) from runs") -> subprocess.CompletedProcess:
    """Open the store file from another process with plain duckdb."""
    return subprocess.run([sys.executable, "-c", _OPEN, str(path), sql], capture_output=True, text=True, timeout=60)


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens the file read-write and keeps it for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "ready", proc.stderr.read()
    return proc


@pytest.fixture
def opened(monkeypatch):
    """Store paths a test opens outside the conftest fixtures; released afterwards."""
    for var in ("WORKBENCH_STORE", "WORKBENCH_USER", "WORKBENCH_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    paths: list[Path] = []
    yield paths
    for p in paths:
        _release(p)


# -- where the store lives -----------------------------------------------------------------
def test_default_store_comes_from_workbench_store_env(tmp_path, monkeypatch, opened):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    target = tmp_path / "elsewhere" / "team.duckdb"
    opened.append(target)
    monkeypatch.setenv("WORKBENCH_STORE", str(target))
    op = operator_workspace()
    assert op.store.path == target.resolve()
    op.add_user("dana", "data_scientist")
    monkeypatch.setenv("WORKBENCH_USER", "dana")
    ws = wb.connect()
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    ws.close()
    assert target.is_file()
    assert _duck(target, "select run_id, user_name from runs") == [(run.run_id, "dana")]
    assert not (cwd / "data").exists()


def test_default_store_without_env_is_data_workbench_duckdb(tmp_path, monkeypatch, opened):
    monkeypatch.chdir(tmp_path)
    opened.append(tmp_path / "data" / "workbench.duckdb")
    op = operator_workspace()
    assert op.store.path == (tmp_path / "data" / "workbench.duckdb").resolve()
    assert (tmp_path / "data" / "workbench.duckdb").is_file()


def test_duckdb_url_is_accepted_and_other_schemes_refused(tmp_path, opened):
    target = tmp_path / "url.duckdb"
    opened.append(target)
    op = operator_workspace(f"duckdb:///{target}")
    assert op.store.path == target.resolve() and target.is_file()
    with pytest.raises(wb.StoreError, match="postgresql"):
        wb.connect("postgresql://host/db")


# -- what it refuses -------------------------------------------------------------------------
def test_store_path_not_writable_is_a_clear_store_error(tmp_path, opened):
    if os.geteuid() == 0:  # root ignores directory modes: use a path under a regular file
        blocker = tmp_path / "file.txt"
        blocker.write_text("not a folder")
        target = blocker / "store.duckdb"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "store.duckdb"
    opened.append(target)
    for attempt in (lambda: operator_workspace(target), lambda: wb.connect(target, user="dana")):
        with pytest.raises(wb.StoreError) as err:
            attempt()
        msg = str(err.value)
        assert str(target.parent) in msg
        assert re.search(r"not writable|not a directory", msg, re.I), msg
    assert not target.exists()


def test_store_path_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(wb.StoreError, match="directory"):
        operator_workspace(tmp_path)


def test_garbage_file_as_store_is_refused_untouched(tmp_path):
    target = tmp_path / "notes.duckdb"
    content = b"these are my notes, not a database\n" * 300
    target.write_bytes(content)
    with pytest.raises(wb.StoreError) as err:
        wb.connect(target, user="dana")
    msg = str(err.value)
    assert str(target) in msg and "not a DuckDB database" in msg
    assert target.read_bytes() == content


def test_sqlite_file_as_store_is_refused_without_loading_an_extension(tmp_path):
    target = tmp_path / "mlflow.db"
    con = sqlite3.connect(target)
    con.execute("create table runs (run_uuid text primary key, name text)")
    con.execute("insert into runs values ('abc', 'first')")
    con.commit()
    con.close()
    content = target.read_bytes()
    ext_dir = Path.home() / ".duckdb" / "extensions"
    before = sorted(ext_dir.rglob("sqlite*")) if ext_dir.exists() else []
    t0 = time.monotonic()
    with pytest.raises(wb.StoreError) as err:
        operator_workspace(target)
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "SQLite" in msg and str(target) in msg
    assert target.read_bytes() == content
    after = sorted(ext_dir.rglob("sqlite*")) if ext_dir.exists() else []
    assert after == before


def test_duckdb_file_that_is_not_a_workbench_store_is_refused_untouched(tmp_path):
    target = tmp_path / "warehouse.duckdb"
    _duck(target, "create table customers (id integer, name varchar); insert into customers values (1, 'Ada')")
    with pytest.raises(wb.StoreError) as err:
        wb.connect(target, user="dana")
    msg = str(err.value)
    assert "not a workbench store" in msg and "customers" in msg
    assert _duck(target, "select table_name from information_schema.tables order by 1") == [("customers",)]
    assert _duck(target, "select * from customers") == [(1, "Ada")]


def test_an_empty_duckdb_file_made_by_another_program_is_refused_untouched(tmp_path, opened):
    import duckdb
    from _demo_store import run_cli

    target = tmp_path / "scratch.duckdb"
    duckdb.connect(str(target)).close()  # another tool's database, with no tables (yet)
    content = target.read_bytes()
    for open_it in (lambda: wb.connect(target, user="dana"), lambda: operator_workspace(target)):
        with pytest.raises(wb.StoreError) as err:
            open_it()
        msg = str(err.value)
        assert str(target) in msg and "no tables" in msg and "not a workbench store" in msg, msg
        assert "remove it" in msg and "new path" in msg, msg  # what to do
    cli = run_cli("init", "--store", target)
    assert cli.returncode == 1 and cli.stderr.startswith("Error: ") and str(target) in cli.stderr, cli.stderr
    assert "no tables" in cli.stderr and "Traceback" not in cli.stderr
    assert target.read_bytes() == content  # byte for byte: no table was created in it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch.duckdb"]  # and no WAL beside it
    assert _duck(target, "select count(*) from information_schema.tables") == [(0,)]
    # a path that does not exist yet still becomes a store
    fresh = tmp_path / "fresh.duckdb"
    opened.append(fresh)
    assert operator_workspace(fresh).counts()["users"] == 0


@pytest.mark.duckdb_file
@pytest.mark.parametrize("damage", ["truncated", "checksum"])
def test_corrupt_store_file_is_refused_untouched(ws, store_path, damage):
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    _release(store_path)
    data = store_path.read_bytes()
    bad = data[:4096] if damage == "truncated" else data[:4096] + bytes(len(data) - 4096)
    store_path.write_bytes(bad)
    with pytest.raises(wb.StoreError) as err:
        wb.connect(store_path, user="dana")
    assert str(store_path) in str(err.value)
    assert store_path.read_bytes() == bad


def test_store_from_a_newer_schema_version_is_refused(ws, store_path):
    with ws.start_run("exp") as run:
        run.log_params({"model": "rf"})
    ws.close()
    _release(store_path)
    newer = schema.SCHEMA_VERSION + 1
    _duck(store_path, f"update store_info set schema_version = {newer}")
    with pytest.raises(wb.StoreError) as err:
        wb.connect(store_path, user="dana")
    msg = str(err.value)
    assert f"schema version {newer}" in msg
    assert f"up to version {schema.SCHEMA_VERSION}" in msg
    assert "Upgrade" in msg
    # refused, not rewritten: the version and the data are as they were
    assert _duck(store_path, "select schema_version from store_info") == [(newer,)]
    assert _duck(store_path, "select run_id, status from runs") == [(run.run_id, "FINISHED")]


@pytest.mark.duckdb_file
# -- sharing the file with other processes ---------------------------------------------------
def test_file_is_free_for_other_processes_after_close_and_after_the_lease(ws, store_path):
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    ws.flush()
    # control: while this process holds the file, another cannot open it
    with ws.store.connection():
        held = _open_elsewhere(store_path)
    assert held.returncode != 0 and "lock" in held.stderr.lower()

    ws.close()
    after_close = _open_elsewhere(store_path)
    assert after_close.returncode == 0, after_close.stderr
    assert after_close.stdout.strip() == "[(1,)]"

    with ws.start_run("exp") as run2:  # reopens on demand
        run2.log_metrics({"a": 2.0})
    ws.flush()
    time.sleep(max(1.0, 3 * ws.store.lease_seconds))  # idle: the lease runs out
    after_lease = _open_elsewhere(store_path)
    assert after_lease.returncode == 0, after_lease.stderr
    assert after_lease.stdout.strip() == "[(2,)]"


@pytest.mark.duckdb_file
def test_write_waits_for_another_process_then_succeeds(ws, store_path):
    ws.close()
    holder = _holder(store_path, 2.0)
    try:
        t0 = time.monotonic()
        with ws.start_run("exp") as run:
            run.log_params({"model": "rf"})
            run.log_metrics({"auc": 0.75})
        ws.flush()
        waited = time.monotonic() - t0
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
    assert waited >= 1.0  # it really waited for the holder
    info = ws.get_run(run.run_id)
    assert info["status"] == "FINISHED"
    assert info["params"] == {"model": "rf"} and info["metrics"] == {"auc": 0.75}


@pytest.mark.duckdb_file
def test_lock_timeout_raises_store_locked_error_naming_the_holder(op, store_path):
    op.add_user("dana", "data_scientist")
    _release(store_path)
    ws = wb.connect(store_path, user="dana", lock_timeout=1)
    ws.close()
    holder = _holder(store_path, 20)
    try:
        t0 = time.monotonic()
        with pytest.raises(wb.StoreLockedError) as err:
            ws.start_run("exp")
        elapsed = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert 0.5 <= elapsed < 5
    msg = str(err.value)
    assert f"PID {holder.pid}" in msg or f"process {holder.pid}" in msg
    assert str(store_path) in msg
    # once the holder is gone the same workspace works again
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    assert ws.get_run(run.run_id)["status"] == "FINISHED"


@pytest.mark.duckdb_file
def test_connect_honours_lock_timeout_when_the_store_is_already_open(ws, store_path):
    quick = wb.connect(store_path, user="dana", lock_timeout=1)  # the store is already open in this process
    quick.close()
    holder = _holder(store_path, 5)
    try:
        t0 = time.monotonic()
        with pytest.raises(wb.StoreLockedError):
            quick.start_run("other-exp")
        elapsed = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert elapsed < 3.5  # 1 s asked for; ignoring it would wait for the holder's 5 s


@pytest.mark.duckdb_file
def test_a_run_held_back_by_a_lock_timeout_is_kept_and_saved_by_the_next_flush(ws, store_path):
    ws.close()
    quick = wb.connect(store_path, user="dana", lock_timeout=1)
    quick._experiment_id("exp", create=True)
    quick.close()  # release the file so the other process can take it
    holder = _holder(store_path, 3)
    try:
        with pytest.raises(wb.StoreLockedError) as info:  # the end waits for its commit: it says so at once
            with quick.start_run("exp", name="patient") as run:
                run.log_params({"lr": 0.1})
                run.log_metrics({"auc": 0.8})
        assert str(holder.pid) in str(info.value)
        with pytest.raises(wb.StoreLockedError):  # kept, tried again, still held
            quick.flush()
    finally:
        holder.wait(timeout=30)
    quick.flush()  # the holder is gone: the same batch is written now, nothing was dropped
    runs = quick.search_runs(experiment="exp")
    assert runs["run_name"].to_list() == ["patient"]
    assert runs["params.lr"].to_list() == ["0.1"] and runs["metrics.auc"].to_list() == [0.8]
    assert runs["status"].to_list() == ["FINISHED"]


def test_a_write_ahead_log_from_another_store_is_named_not_blamed_on_versions(tmp_path, opened):
    from workbench.workspace import operator_workspace

    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    opened.extend([a, b])
    operator_workspace(a).add_user("x", "data_scientist", None)
    _release(a)
    other = operator_workspace(b)
    other.add_user("y", "data_scientist", None)
    with other.store.connection() as conn:  # b is open with a write not yet checkpointed: its log is beside it
        conn.exec_driver_sql("create table scratch (a integer)")
        conn.commit()
        assert (tmp_path / "b.duckdb.wal").exists()
        shutil.copy(tmp_path / "b.duckdb.wal", tmp_path / "a.duckdb.wal")
    with pytest.raises(wb.StoreError) as info:
        operator_workspace(a)
    message = str(info.value)
    assert "a.duckdb.wal" in message and "is damaged" in message and "Nothing has been changed" in message
    assert "move" not in message and "another DuckDB version" not in message
    assert (tmp_path / "a.duckdb.wal").exists()  # the log is left where it was


def test_a_read_with_two_columns_of_one_name_gets_distinct_names(ws):
    with ws.start_run("exp") as run:
        run.log_params({"a": 1})
    ws.flush()
    out = ws.store.read("select count(*), count(distinct run_id), max(name), max(name) from runs")
    assert out.row(0)[:2] == (1, 1) and out.row(0)[2:] == (run.name, run.name)
    assert len(set(out.columns)) == 4


def _first_then_register(conn) -> None:
    """What a write after a read does: a result read with ``.first()``, then an Arrow scan."""
    conn.execute(sa.text("create table t as select * from range(50000) r(x)"))
    conn.execute(sa.text("select x from t")).first()  # leaves the rest of the result unread
    raw = conn.connection.dbapi_connection
    raw.register("batch", pa.table({"x": [1]}))
    raw.execute("insert into t select x from batch").fetchall()


@pytest.mark.duckdb_file
def test_duckdb_engine_still_needs_our_cursor_close(tmp_path):
    """duckdb_engine 0.17's cursor.close() leaves a result unfinished, which DuckDB 2 refuses before
    the next statement. Our engines finish it (connection._finish_results). When a plain engine
    stops failing here, duckdb_engine does this itself: remove the work-around."""
    from sqlalchemy.pool import NullPool

    plain = sa.create_engine(f"duckdb:///{tmp_path / 'plain.duckdb'}", poolclass=NullPool)
    with pytest.raises(duckdb.Error, match="unfinished result"), plain.connect() as conn:
        _first_then_register(conn)
    ours = Store(tmp_path / "ours.duckdb")
    try:
        with ours.connection() as conn:
            _first_then_register(conn)
    finally:
        ours.close()


# -- schema 9: typed JSON columns ---------------------------------------------------------------
_JSON_COLUMNS = [("users", "known_addresses"), ("api_tokens", "operations"), ("evidence", "summary"), ("evidence", "policy"),
                 ("monitor_policies", "thresholds"), ("monitor_policies", "retrain_command"), ("alerts", "command"),
                 ("gate_policies", "gates")]


def _column_type(store_path, table: str, column: str) -> str:
    return _duck(store_path, "select data_type from information_schema.columns where table_name = ? and "
                 "column_name = ? and table_schema = current_schema()", [table, column])[0][0].lower()


def _as_schema_8(store_path) -> None:
    """Turn the typed JSON columns back into the text they were before schema 9."""
    pg = str(store_path).startswith("postgresql")
    for table, column in _JSON_COLUMNS:
        if pg:
            _duck(store_path, f'alter table {table} alter column "{column}" type varchar using "{column}"::text')
            continue
        indexes = _duck(store_path, "select index_name, sql from duckdb_indexes() where table_name = ? "
                        "and sql is not null", [table])
        for name, _ in indexes:
            _duck(store_path, f'drop index "{name}"')
        _duck(store_path, f'alter table {table} alter column "{column}" type varchar')
        for _, sql in indexes:
            _duck(store_path, sql)
    _duck(store_path, "update store_info set schema_version = 8")


def test_the_model_has_exactly_the_typed_json_columns_this_test_knows():
    from sqlmodel import SQLModel
    typed = [(t.name, c.name) for t in SQLModel.metadata.sorted_tables for c in t.columns if c.type is schema.JSON]
    assert sorted(typed) == sorted(_JSON_COLUMNS)


def test_a_schema_8_store_gets_typed_json_in_place_and_reads_the_same(op, store_path):
    op.add_user("dana", "data_scientist", password="a long enough passphrase 7")
    auth.sign_in(store_path, "dana", "a long enough passphrase 7", address="198.51.100.7")
    gates = op.set_gate_policy("low", required_evidence=["explanation"], min_metrics={"auc": 0.7})
    assert all(_column_type(store_path, t, c) in ("json", "jsonb") for t, c in _JSON_COLUMNS)  # a new store
    op.close()
    shared.close(store_path)
    _as_schema_8(store_path)
    assert json.loads(_duck(store_path, "select gates from gate_policies")[0][0]) == gates  # text again
    again = operator_workspace(store_path)  # opening upgrades
    assert again.store.scalar("select schema_version from store_info") == schema.SCHEMA_VERSION
    assert {(t, c): _column_type(store_path, t, c) for t, c in _JSON_COLUMNS} == {
        k: ("jsonb" if str(store_path).startswith("postgresql") else "json") for k in _JSON_COLUMNS}
    assert again.gate_policy("low") == gates
    assert _duck(store_path, "select known_addresses from users where name = 'dana'")[0][0] in (
        ["198.51.100.7"], '["198.51.100.7"]')
    migrated = again.audit_events(action="store.migrate")["payload"].to_list()
    assert json.loads(migrated[0])["from"] == 8 and json.loads(migrated[0])["to"] == schema.SCHEMA_VERSION
    assert again.verify_audit().ok


def test_text_that_is_not_json_stops_the_upgrade_and_changes_nothing(op, store_path):
    op.set_gate_policy("low", required_evidence=["explanation"])
    op.close()
    shared.close(store_path)
    _as_schema_8(store_path)
    _duck(store_path, "update gate_policies set gates = '{\"required_evidence\": [' where risk_tier = 'low'")
    with pytest.raises(wb.StoreError, match=r"gate_policies\.gates holds text that is not JSON"):
        operator_workspace(store_path)
    shared.close(store_path)
    assert _duck(store_path, "select schema_version from store_info") == [(8,)]
    assert _column_type(store_path, "gate_policies", "gates") in ("varchar", "character varying")
    assert _duck(store_path, "select gates from gate_policies") == [('{"required_evidence": [',)]
    assert _column_type(store_path, "evidence", "summary") in ("varchar", "character varying")  # rolled back too
