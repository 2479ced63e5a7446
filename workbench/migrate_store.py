"""Prototype of ``workbench migrate --from duckdb:///path --to postgresql://...``.

Copies every table of a DuckDB store into an empty PostgreSQL database in one transaction
(COPY, binary), moves the sequences past the copied ids, then checks row counts and the
audit chain on the target, and that the target's head equals the source's.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from sqlmodel import SQLModel

from . import audit
from .errors import StoreError
from .store import schema
from .store.connection import Store

_PG_TYPE = {"INTEGER": "int4", "BIGINT": "int8", "DOUBLE": "float8", "FLOAT": "float8", "VARCHAR": "text",
            "BOOLEAN": "bool", "DATETIME": "timestamptz", "TIMESTAMP": "timestamptz"}


def _pg_type(col: sa.Column) -> str:
    t = col.type
    if isinstance(t, sa.DateTime):
        return "timestamptz"
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.BigInteger):
        return "int8"
    if isinstance(t, sa.Integer):
        return "int4"
    if isinstance(t, (sa.Double, sa.Float)):
        return "float8"
    return "text"


def migrate(source: str, target: str, batch_rows: int = 100_000, log=print) -> dict:
    src = Store(source)
    if src.is_postgres:
        raise StoreError("--from must be a DuckDB store")
    dst = Store(target)  # creates the schema on an empty database
    if not dst.is_postgres:
        raise StoreError("--to must be a postgresql:// URL")
    counts = {}
    t0 = time.perf_counter()
    with src.connection() as sconn, dst.transaction() as dconn:
        n_dst = dconn.execute(sa.text("select count(*) from audit_events")).scalar()
        if n_dst:
            raise StoreError(f"{dst.display} already holds {n_dst} audit events: migrate into an empty database.")
        raw_src = sconn.connection.dbapi_connection
        raw_dst = dconn.connection.dbapi_connection
        with raw_dst.cursor() as cur:
            # the new store's own rows (store_info, audit head) are replaced by the source's
            cur.execute("delete from store_info")
            cur.execute("delete from audit_head")
            for table in SQLModel.metadata.sorted_tables:
                cols = [c.name for c in table.columns]
                types = [_pg_type(c) for c in table.columns]
                collist = ", ".join(f'"{c}"' for c in cols)
                n = 0
                reader = raw_src.sql(f"select {collist} from {table.name}").to_arrow_reader(batch_rows)
                with cur.copy(f"copy {table.name} ({collist}) from stdin (format binary)") as cp:
                    cp.set_types(types)
                    for b in reader:
                        for row in zip(*(c.to_pylist() for c in b.columns)):
                            cp.write_row(row)
                        n += b.num_rows
                counts[table.name] = n
            for table in SQLModel.metadata.sorted_tables:  # sequences past the copied ids
                for c in table.columns:
                    if c.default is not None and isinstance(c.default, sa.Sequence):
                        cur.execute(f"select setval('{c.default.name}', coalesce((select max({c.name}) from {table.name}), 0) + 1, false)")
        check = audit.verify(dconn)
        src_head = sconn.execute(sa.text("select seq, hash from audit_head")).first()
        if not check.ok:
            raise StoreError(f"the copied audit chain does not verify: {check.reason}")
        if src_head is not None and (src_head[0], src_head[1]) != (check.n_events, check.head_hash):
            raise StoreError("the copied chain's head differs from the source's")
        for name, n in counts.items():
            got = dconn.execute(sa.text(f"select count(*) from {name}")).scalar()
            if got != n:
                raise StoreError(f"{name}: copied {n} rows, target has {got}")
    elapsed = time.perf_counter() - t0
    src.close()
    dst.close()
    return {"tables": counts, "events": check.n_events, "head": check.head_hash, "seconds": elapsed}
