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
on the source still checks.

The source is opened read-only and never changed, not even to upgrade its schema (its bytes
are the same afterwards; it may be a read-only file). A source written by an older
workbench is read as it is: its tables and columns are copied, the tables and columns it
lacks stay empty in the copy, as an upgrade in place would leave them (upgrades only add
nullable columns and tables), and the copy keeps the source's schema version, so the first
open of the copy upgrades it and records that in the copy's own chain. A source written by
a newer workbench is refused.

Example (a throwaway PostgreSQL database)::

    summary = migrate("data/workbench.duckdb", "postgresql+psycopg://wb:pw@db:5432/workbench")
    summary["head"] == summary["source_head"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import duckdb
import sqlalchemy as sa
from sqlmodel import SQLModel

from ..errors import StoreError, StoreLockedError, ValidationError
from . import artifacts, audit, schema
from .connection import DUCKDB_CONFIG, Store, artifact_root_of, is_postgres, store_path
from .writer import copy_batches

#: Columns that name a file in the artifact folder by its sha256.
FILE_COLUMNS = (("artifacts", "sha256"), ("model_versions", "sha256"), ("evidence", "artifact_sha256"),
                ("prediction_batches", "sha256"))
#: Rows a new store makes for itself; the source's replace them.
_OWN_ROWS = ("store_info", "audit_head")


def _pg_type(col: sa.Column) -> str:
    """The PostgreSQL type name COPY (binary) needs for a column of the model."""
    t = col.type
    if t is schema.JSON:
        return "jsonb"
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


def open_source(path: Path, lock_timeout: float = 30.0) -> duckdb.DuckDBPyConnection:
    """The source store, opened read-only, its schema version checked; nothing is written to it.

    Not through :class:`~workbench.store.connection.Store`: a Store opens its file read-write
    and upgrades an older schema in place, and a migration must leave its source as it was.
    DuckDB lets no reader in while another process writes the file, so a locked file is
    retried for up to ``lock_timeout`` seconds, then refused.

    Parameters
    ----------
    path : Path
        The DuckDB store file.
    lock_timeout : float, optional
        Seconds to wait for a writer in another process to let go of the file.

    Returns
    -------
    duckdb.DuckDBPyConnection
        A read-only connection; the caller closes it.

    Raises
    ------
    StoreError
        The file is not a DuckDB database, not a workbench store, or from a newer workbench.
    StoreLockedError
        Another process kept the file for ``lock_timeout`` seconds.
    """
    config = dict(DUCKDB_CONFIG)  # no extension autoloading: it would download at run time and fail offline
    deadline, delay = time.monotonic() + lock_timeout, 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True, config=config)
            break
        except duckdb.Error as exc:
            if "Could not set lock" not in str(exc):
                raise StoreError(f"--from {path} cannot be read as a DuckDB store: {exc}") from None
            if time.monotonic() + delay > deadline:
                raise StoreLockedError(f"--from {path} is held by another process that writes to it; stop the "
                                       f"processes using the store, then migrate: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        if "store_info" not in _source_columns(con):
            raise StoreError(f"--from {path} is a DuckDB database but not a workbench store (no store_info table).")
        version, written_by = con.execute("select schema_version, created_with from store_info").fetchone()
        if version > schema.SCHEMA_VERSION:
            raise StoreError(f"--from {path} has schema version {version} (written by workbench {written_by}); this "
                             f"workbench reads up to version {schema.SCHEMA_VERSION}. Upgrade workbench to migrate it.")
    except BaseException:
        con.close()
        raise
    return con


def _source_columns(raw_src) -> dict[str, set[str]]:
    """The source's tables and their columns: an older store lacks some of the model's."""
    found: dict[str, set[str]] = {}
    for table, column in raw_src.execute("select table_name, column_name from information_schema.columns "
                                         "where table_schema = current_schema()").fetchall():
        found.setdefault(table, set()).add(column)
    return found


def _source_artifact_root(raw_src, path: Path) -> Path:
    """Where the source's files are, found as ``Store.artifact_root`` finds them for an open store."""
    recorded = None
    if "artifact_root" in _source_columns(raw_src).get("store_info", set()):
        recorded = raw_src.execute("select artifact_root from store_info").fetchone()[0]
    return artifact_root_of(path, recorded)


def _missing_files(raw_src, root: Path) -> list[str]:
    have = _source_columns(raw_src)
    digests: set[str] = set()
    for table, column in FILE_COLUMNS:
        if column in have.get(table, set()):
            digests.update(r[0] for r in raw_src.execute(
                f"select distinct {column} from {table} where {column} is not null").fetchall())
    return sorted(d for d in digests if not artifacts.path_for(root, d).exists())


def _copy_table(raw_src, cur, table: sa.Table, batch_rows: int) -> int:
    # Only the columns the source has: the others (added by a later schema) stay NULL in the
    # copy, as an in-place upgrade leaves them; a table the source lacks copies no rows.
    have = _source_columns(raw_src).get(table.name, set())
    columns = [c for c in table.columns if c.name in have]
    if not columns:
        return 0
    collist = ", ".join(f'"{c.name}"' for c in columns)
    reader = raw_src.sql(f"select {collist} from {table.name}").to_arrow_reader(batch_rows)
    return copy_batches(cur, f"copy {table.name} ({collist}) from stdin (format binary)",
                        [_pg_type(c) for c in columns], reader)


def migrate(source: str, target: str, *, artifact_root: str | Path | None = None, batch_rows: int = 100_000,
            log: Callable[[str], None] = lambda _: None) -> dict:
    """Copy the DuckDB store ``source`` into the empty PostgreSQL database ``target``.

    ``artifact_root`` is where the target will find the source's artifact folder (default:
    where it is now). Returns the rows per table, the event count, both heads, the
    artifact folder, the referenced files missing from it, and the seconds taken.

    Parameters
    ----------
    source : str
        The DuckDB store: a file path or ``duckdb:///path``. Opened read-only (:func:`open_source`).
    target : str
        A PostgreSQL URL of an empty database (or one holding only an empty workbench schema).
    artifact_root : str or Path, optional
        The artifact folder to record in the copy; default the source's.
    batch_rows : int, default 100_000
        Rows per Arrow batch read from the source.
    log : callable, optional
        Called with one line of progress per table copied.

    Returns
    -------
    dict
        ``tables`` ({table: rows copied}), ``events``, ``head`` (the copy's head hash),
        ``source_head``, ``artifact_root``, ``missing_files`` (sorted digests the tables name that
        are not in the folder: reported, not fatal) and ``seconds``.

    Raises
    ------
    ValidationError
        If ``source`` is not a DuckDB store file or ``target`` not a PostgreSQL URL.
    StoreError
        If the source cannot be read or is from a newer workbench, the target is not an empty
        database, or the copy fails its checks (row counts, chain, head); no rows are kept then.
    StoreLockedError
        If another process writing the source held it for 30 seconds, or another writer held
        the target's write lock for its ``lock_timeout``.
    """
    source, target = str(source), str(target)
    _check_locations(source, target)
    t0 = time.perf_counter()
    path = store_path(source).resolve()
    raw_src = open_source(path)
    dst = None
    try:
        root = Path(artifact_root).resolve() if artifact_root else _source_artifact_root(raw_src, path).resolve()
        dst = Store(target)  # creates the schema in an empty database
        counts: dict[str, int] = {}
        with dst.transaction() as dconn:
            dst.lock_for_write(dconn)
            for table in SQLModel.metadata.sorted_tables:
                if table.name in _OWN_ROWS:
                    continue
                if dconn.execute(sa.text(f"select exists (select 1 from {table.name})")).scalar():
                    raise StoreError(f"{dst.display} is not empty (table {table.name} has rows): "
                                     "migrate into a new, empty database.")
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
            source_head = raw_src.execute("select seq, hash from audit_head").fetchone()
            check = audit.verify(dconn)
            if not check.ok:
                raise StoreError(f"The copied audit chain does not verify ({check.reason}): nothing was kept.")
            if source_head is not None and (source_head[0], source_head[1]) != (check.n_events, check.head_hash):
                raise StoreError("The copy's audit head differs from the source's: nothing was kept.")
            missing = _missing_files(raw_src, root)
    finally:
        raw_src.close()
        if dst is not None:
            dst.close()
    return {"tables": counts, "events": check.n_events, "head": check.head_hash,
            "source_head": source_head[1] if source_head else audit.GENESIS, "artifact_root": str(root),
            "missing_files": missing, "seconds": time.perf_counter() - t0}
