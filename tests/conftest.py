"""Shared fixtures: a fresh DuckDB store per test, its operator, and a data scientist."""

from __future__ import annotations

import itertools
import os

import pytest
from _raw import drop_pg_database

import workbench as wb
from workbench.workspace import operator_workspace


def pytest_configure(config):
    # One pseudonymisation key for the whole run, servers and demo stores included, so no
    # test writes a key file into the home folder; tests of key handling override it.
    os.environ["WORKBENCH_PSEUDONYM_KEY"] = "5e" * 32
    for name in ("WORKBENCH_PSEUDONYM_KEY_FILE", "WORKBENCH_ARTIFACT_KEY", "WORKBENCH_ARTIFACT_KEY_FILE"):
        os.environ.pop(name, None)


# WORKBENCH_TEST_PG=postgresql+psycopg://user:pw@127.0.0.1:PORT/db (a role with CREATEDB) runs the
# store-backed tests on PostgreSQL: each test gets its own database, copied from a template.
_PG = os.environ.get("WORKBENCH_TEST_PG")
_PG_DBS = itertools.count()
_PG_TEMPLATE = f"wbt_template_{os.getpid()}"


def _pg_admin():
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(_PG).set(drivername="postgresql", database="postgres")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def _pg_url(db: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(_PG).set(database=db).render_as_string(hide_password=False)


def pytest_collection_modifyitems(config, items):
    if _PG:
        return
    # PostgreSQL-only tests cannot run without a server: deselected, and said so at the end
    # (.ci/run's PostgreSQL pass runs them). Never a silent skip.
    pg_only = [i for i in items if i.get_closest_marker("postgres")]
    if pg_only:
        config.hook.pytest_deselected(items=pg_only)
        items[:] = [i for i in items if not i.get_closest_marker("postgres")]
        config._workbench_pg_only = len(pg_only)


def pytest_terminal_summary(terminalreporter, config):
    n = getattr(config, "_workbench_pg_only", 0)
    if n:
        terminalreporter.write_line(
            f"{n} PostgreSQL-only tests were not run: set WORKBENCH_TEST_PG=<url> (make test's second pass does).",
            yellow=True)


@pytest.fixture(scope="session")
def _pg_template():
    from workbench.store.connection import Store

    with _pg_admin() as a:
        drop_pg_database(a, _PG_TEMPLATE)
        a.execute(f"create database {_PG_TEMPLATE}")
    s = Store(_pg_url(_PG_TEMPLATE))  # creates the schema once
    s.close()
    yield _PG_TEMPLATE
    with _pg_admin() as a:
        drop_pg_database(a, _PG_TEMPLATE)


def _forget(path) -> None:
    """Close the process-wide Store for ``path`` (if any) and drop it from the cache."""
    from workbench.store import shared

    try:
        shared.close(path)
    except wb.WorkbenchError:
        pass  # a test that provoked a failed write already asserted on it


@pytest.fixture
def store_path(tmp_path, monkeypatch, request):
    """A path for a new store file (not created yet); its Store is closed afterwards.
    With WORKBENCH_TEST_PG: the URL of a fresh PostgreSQL database instead."""
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    monkeypatch.delenv("WORKBENCH_USER", raising=False)
    monkeypatch.delenv("WORKBENCH_ARTIFACTS", raising=False)
    if _PG and not request.node.get_closest_marker("duckdb_file"):
        template = request.getfixturevalue("_pg_template")
        db = f"wbt_{os.getpid()}_{next(_PG_DBS)}"
        with _pg_admin() as a:
            a.execute(f"create database {db} template {template} strategy file_copy")
        monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "workbench.artifacts"))
        url = _pg_url(db)
        yield url
        _forget(url)
        with _pg_admin() as a:
            drop_pg_database(a, db)
        return
    path = tmp_path / "workbench.duckdb"
    yield path
    _forget(path)


@pytest.fixture
def op(store_path):
    """The local operator's workspace on the fresh store (may add users)."""
    return operator_workspace(store_path)


@pytest.fixture
def ws(op, store_path):
    """A workspace acting as ``dana``, a data scientist."""
    op.add_user("dana", "data_scientist")  # no password: argon2 costs ~0.2 s a hash
    return wb.connect(store=store_path, user="dana")
