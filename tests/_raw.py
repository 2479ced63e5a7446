"""Raw SQL on a store behind the workbench's back, on either backend: how tests tamper.

A DuckDB file is opened with plain duckdb once the workbench has let go of it (its lease
ends after a fraction of a second); a PostgreSQL URL with plain psycopg. ``?`` placeholders
work on both.
"""

from __future__ import annotations

import time

import duckdb

from workbench.store.connection import is_postgres, pg_sql


def raw_sql(store, sql: str, params: list | None = None, timeout: float = 5.0) -> list:
    """Run ``sql`` (one statement, committed) on the store and return its rows, if any."""
    location = str(store)
    if is_postgres(location):
        import psycopg
        import sqlalchemy as sa

        url = sa.engine.make_url(location).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as con, con.cursor() as cur:
            cur.execute(pg_sql(sql), params or [])  # a list even when empty: psycopg then reads %% as %
            return cur.fetchall() if cur.description else []
    deadline = time.monotonic() + timeout
    while True:
        try:
            con = duckdb.connect(location)
            break
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        cur = con.execute(sql, params or [])
        return cur.fetchall() if cur.description else []
    finally:
        con.close()


def drop_pg_database(admin, db: str) -> None:
    """Drop a test database. ``with (force)`` ends our own leftover sessions, but is refused
    while an autovacuum worker (a superuser's process) is in it; a plain drop cancels that
    worker, so fall back to it, retrying while sessions are still closing."""
    import psycopg

    for attempt in range(50):
        try:
            admin.execute(f"drop database if exists {db}" + (" with (force)" if attempt % 2 == 0 else ""))
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            time.sleep(0.1)
    admin.execute(f"drop database if exists {db} with (force)")  # the real error, if it persists
