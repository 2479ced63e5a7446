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
