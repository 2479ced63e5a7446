"""Copy a whole DuckDB store into an empty PostgreSQL database: ``workbench migrate``.

Every table is copied in one transaction on the target (binary COPY, streamed in Arrow
batches), the sequences are moved past the copied ids, and then the copy is checked
before it commits: the same row count in every table, an audit chain that verifies, and
the same head (sequence number and digest) as the source. A failed check rolls the whole
copy back, so the target is either a full copy or stays empty.

Artifacts are referenced, not duplicated: the target records the source's artifact
folder in ``store_info.artifact_root``, so both stores read the same content-addressed
files (``WORKBENCH_ARTIFACTS`` overrides it on machines that mount the folder elsewhere).
No audit event is appended to the copy: its head is the source's, which an anchor taken
on the source still checks. The source is only read (opening it brings an older store up
to this version first, as every command does).

Example (a throwaway PostgreSQL database)::

    summary = migrate("data/workbench.duckdb", "postgresql+psycopg://wb:pw@db:5432/workbench")
    summary["head"] == summary["source_head"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from sqlmodel import SQLModel

from . import artifacts, audit
from .errors import StoreError, ValidationError
from .store.connection import Store, is_postgres, store_path
from .store.writer import copy_batches

#: Columns that name a file in the artifact folder by its sha256.
FILE_COLUMNS = (("artifacts", "sha256"), ("model_versions", "sha256"), ("evidence", "artifact_sha256"),
                ("prediction_batches", "sha256"))
#: Rows a new store makes for itself; the source's replace them.
_OWN_ROWS = ("store_info", "audit_head")


def _pg_type(col: sa.Column) -> str:
    """The PostgreSQL type name COPY (binary) needs for a column of the model."""
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


def _check_locations(source: str, target: str) -> None:
    if is_postgres(source):
        raise ValidationError(f"--from must be a DuckDB store (a file path or duckdb:///path), not {source.split('://')[0]}://.")
    if not is_postgres(target):
        raise ValidationError("--to must be a PostgreSQL URL: postgresql+psycopg://user:password@host:port/database.")
    path = store_path(source)
    if not path.is_file():
        raise ValidationError(f"--from {path}: no store file there.")


def _missing_files(conn: sa.Connection, root: Path) -> list[str]:
    digests: set[str] = set()
    for table, column in FILE_COLUMNS:
        digests.update(r[0] for r in conn.execute(sa.text(f"select distinct {column} from {table} where {column} is not null")))
    return sorted(d for d in digests if not artifacts.path_for(root, d).exists())


def _copy_table(raw_src, cur, table: sa.Table, batch_rows: int) -> int:
    collist = ", ".join(f'"{c.name}"' for c in table.columns)
    reader = raw_src.sql(f"select {collist} from {table.name}").to_arrow_reader(batch_rows)
    return copy_batches(cur, f"copy {table.name} ({collist}) from stdin (format binary)",
                        [_pg_type(c) for c in table.columns], reader)


def migrate(source: str, target: str, *, artifact_root: str | Path | None = None, batch_rows: int = 100_000,
            log: Callable[[str], None] = lambda _: None) -> dict:
    """Copy the DuckDB store ``source`` into the empty PostgreSQL database ``target``.

    ``artifact_root`` is where the target will find the source's artifact folder (default:
    where it is now). Returns the rows per table, the event count, both heads, the
    artifact folder, the referenced files missing from it, and the seconds taken.
    """
    source, target = str(source), str(target)
    _check_locations(source, target)
    t0 = time.perf_counter()
    src = Store(source)
    dst = None
    try:
        root = Path(artifact_root).resolve() if artifact_root else src.artifact_root.resolve()
        dst = Store(target)  # creates the schema in an empty database
        counts: dict[str, int] = {}
        with src.connection() as sconn, dst.transaction() as dconn:
            dst.lock_for_write(dconn)
            for table in SQLModel.metadata.sorted_tables:
                if table.name in _OWN_ROWS:
                    continue
                if dconn.execute(sa.text(f"select exists (select 1 from {table.name})")).scalar():
                    raise StoreError(f"{dst.display} is not empty (table {table.name} has rows): "
                                     "migrate into a new, empty database.")
            raw_src = sconn.connection.dbapi_connection
            with dconn.connection.dbapi_connection.cursor() as cur:
                for name in _OWN_ROWS:
                    cur.execute(f"delete from {name}")
                for table in SQLModel.metadata.sorted_tables:
                    counts[table.name] = _copy_table(raw_src, cur, table, batch_rows)
                    log(f"  {table.name}: {counts[table.name]:,} rows")
                # a source without events has no head row; PostgreSQL writers lock that row: make it
                cur.execute("insert into audit_head (id, seq, hash) values (1, 0, %s) on conflict do nothing",
                            [audit.GENESIS])
                for table in SQLModel.metadata.sorted_tables:  # new ids continue after the copied ones
                    for c in table.columns:
                        if isinstance(c.default, sa.Sequence):
                            cur.execute(f"select setval('{c.default.name}', "
                                        f"coalesce((select max({c.name}) from {table.name}), 0) + 1, false)")
            dconn.execute(sa.text("update store_info set artifact_root = :r"), {"r": str(root)})
            counts["audit_head"] = max(counts["audit_head"], 1)
            for name, n in counts.items():
                got = dconn.execute(sa.text(f"select count(*) from {name}")).scalar()
                if got != n:
                    raise StoreError(f"{name}: {n:,} rows read from the source but {got:,} in the copy")
            source_head = sconn.execute(sa.text("select seq, hash from audit_head")).first()
            check = audit.verify(dconn)
            if not check.ok:
                raise StoreError(f"The copied audit chain does not verify ({check.reason}): nothing was kept.")
            if source_head is not None and (source_head[0], source_head[1]) != (check.n_events, check.head_hash):
                raise StoreError("The copy's audit head differs from the source's: nothing was kept.")
            missing = _missing_files(sconn, root)
            if sconn.in_transaction():
                sconn.commit()
    finally:
        src.close()
        if dst is not None:
            dst.close()
    return {"tables": counts, "events": check.n_events, "head": check.head_hash,
            "source_head": source_head[1] if source_head else audit.GENESIS, "artifact_root": str(root),
            "missing_files": missing, "seconds": time.perf_counter() - t0}
