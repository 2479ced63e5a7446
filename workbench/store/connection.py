"""Access to the store file: one place that opens, leases, locks and releases it.

DuckDB lets one process at a time open a file, and the dashboard, a notebook and a
scheduled export share the same file. So no process keeps it while idle: a connection is
*leased* while work flows and closed after ``lease_seconds`` without use. Opening costs
20-30 ms, so it is not done per statement. When another process holds the file, opening
is retried with jittered exponential backoff up to ``lock_timeout`` seconds, then fails
with a :class:`StoreLockedError` naming the holder.
"""

from __future__ import annotations

import io
import os
import random
import re
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb_engine
import polars as pl
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from .._version import __version__
from ..errors import StoreError, StoreLockedError, ValidationError
from . import headmark, schema, served
from .canonical import canonical_json, loads

DEFAULT_STORE = "data/workbench.duckdb"


class _FinishingCursor(duckdb_engine.CursorWrapper):
    """duckdb_engine 0.17 makes ``cursor.close()`` a no-op, but DuckDB 2 refuses any statement
    while a previous result is unfinished (e.g. after SQLAlchemy's ``.first()``): finish it.
    tests/test_store.py fails once duckdb_engine no longer needs this."""

    def close(self) -> None:
        self._CursorWrapper__c.complete()


def _finish_results(dbapi_connection, _record) -> None:
    """On each new DuckDB connection of our engines (not duckdb_engine's class for everyone)."""
    raw = dbapi_connection._ConnectionWrapper__c
    dbapi_connection.cursor = lambda: _FinishingCursor(raw, dbapi_connection)


_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")
# Extensions other than parquet/json/icu download at run time and fail offline:
# never let DuckDB try (it would, e.g., for a SQLite file given as the store).
DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "checkpoint_threshold": "256MB"}


def resolve_store(store: str | os.PathLike | None) -> str:
    """The store location: the argument, else ``$WORKBENCH_STORE``, else the default."""
    value = store if store is not None else os.environ.get("WORKBENCH_STORE") or DEFAULT_STORE
    return str(value)


def is_postgres(location: str) -> bool:
    """Whether ``location`` is a PostgreSQL URL (``postgresql://``, ``postgresql+psycopg://``, ``postgres://``)."""
    return location.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def store_key(location: str) -> str:
    """The identity of a store: the resolved file path, or the URL (without password)."""
    if is_postgres(location):
        return sa.engine.make_url(location).render_as_string(hide_password=True)
    return str(store_path(location).resolve())


def store_path(location: str) -> Path:
    """The DuckDB file a location names: a path as it is, or the path of a ``duckdb://`` URL.

    Not resolved: a relative path stays relative. (``duckdb:///data/x.duckdb`` is the relative
    ``data/x.duckdb``, ``duckdb:////srv/x.duckdb`` the absolute ``/srv/x.duckdb``.)

    Raises
    ------
    StoreError
        For a URL of any other scheme (PostgreSQL URLs included: check :func:`is_postgres` first).
    """
    for prefix in ("duckdb:///", "duckdb://"):
        if location.startswith(prefix):
            return Path(location[len(prefix):])
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise StoreError(
            f"Store URL scheme {scheme!r} is not supported yet: give a DuckDB file path "
            f"(e.g. {DEFAULT_STORE})."
        )
    return Path(location)


def _check_file(path: Path) -> None:
    """Refuse, before DuckDB sees it, a file that is not a DuckDB database."""
    if path.is_dir():
        raise StoreError(f"Store path {path} is a directory, not a DuckDB file.")
    if path.exists() and path.stat().st_size == 0:
        raise StoreError(f"{path} is an empty file, not a DuckDB database: it cannot be used as a store. "
                         "Remove it to create a new store there, or point --store / WORKBENCH_STORE at another path.")
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise StoreError(f"Store folder {parent} is a file, not a directory: cannot create {path.name} in it.")
        if not parent.exists():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create the folder {parent} for the store: {exc.strerror}.") from None
        if not os.access(parent, os.W_OK):
            raise StoreError(f"Store folder {parent} is not writable: cannot create {path.name} there.")
        return
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[8:12] != b"DUCK":
        kind = "a SQLite database" if head.startswith(b"SQLite format 3") else "not a DuckDB database"
        raise StoreError(
            f"{path} is {kind}: it cannot be used as a workbench store. "
            "Point --store / WORKBENCH_STORE at a workbench .duckdb file or a new path."
        )
    if not os.access(path, os.W_OK):
        raise StoreError(f"Store file {path} is not writable by this user.")


def artifact_root_of(path: Path | None, recorded: str | None) -> Path:
    """Where a store's content-addressed files live: ``$WORKBENCH_ARTIFACTS``, else the folder the
    store names (``recorded``: ``store_info.artifact_root``, set by ``workbench migrate``), else
    ``<store file>.artifacts/`` beside a DuckDB file (``path``).

    Parameters
    ----------
    path : Path or None
        The DuckDB store file; None for a PostgreSQL store.
    recorded : str or None
        ``store_info.artifact_root``; None or "" when the store records none.

    Raises
    ------
    StoreError
        For a PostgreSQL store (``path`` None) that records no folder, when
        ``$WORKBENCH_ARTIFACTS`` is not set either.
    """
    override = os.environ.get("WORKBENCH_ARTIFACTS")
    if override:
        return Path(override)
    if recorded:
        return Path(recorded)
    if path is None:
        raise StoreError("A PostgreSQL store keeps its files in a shared folder: set WORKBENCH_ARTIFACTS to it.")
    return path.with_suffix(".artifacts")


class _Locked(Exception):
    """Another process holds the file (raised by the read-only log check; retried like an open)."""


_PLACEHOLDER = re.compile(r"('(?:[^']|'')*')|(\?)|(\$[A-Za-z_][A-Za-z0-9_]*)|(%)")


def pg_sql(sql: str) -> str:
    """DuckDB's ``?`` / ``$name`` placeholders as psycopg's ``%s`` / ``%(name)s``."""
    def sub(m):
        if m.group(1):
            return m.group(1).replace("%", "%%")
        if m.group(2):
            return "%s"
        if m.group(3):
            return f"%({m.group(3)[1:]})s"
        return "%%"
    return _PLACEHOLDER.sub(sub, sql)


_PG_TYPES = {16: pl.Boolean, 20: pl.Int64, 21: pl.Int64, 23: pl.Int64, 700: pl.Float64, 701: pl.Float64,
             25: pl.String, 1043: pl.String, 1184: pl.Datetime("us", "UTC"), 1114: pl.Datetime("us"),
             1007: pl.List(pl.Int64), 1016: pl.List(pl.Int64), 1015: pl.List(pl.String), 1009: pl.List(pl.String),
             1700: pl.Float64}


def _unique(names: list[str]) -> list[str]:
    """Two result columns may share a name (PostgreSQL calls every ``count(...)`` "count");
    polars needs distinct ones: the second becomes ``name_1``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


def frame(raw, sql: str, params: list | dict | None = None) -> pl.DataFrame:
    """A query's result as polars, through Arrow (DuckDB's relation API avoids a copy).

    Parameters
    ----------
    raw : duckdb.DuckDBPyConnection or psycopg.Connection
        The driver connection (``conn.connection.dbapi_connection``).
    sql : str
        The query, with DuckDB placeholders (``?`` or ``$name``); they are rewritten for psycopg.
    params : list, dict or None
        The bound values.

    Returns
    -------
    polars.DataFrame
        One column per result column; a repeated column name gets a ``_1``, ``_2`` ... suffix.
    """
    _refuse_nul_in_read(params)
    if hasattr(raw, "pgconn"):  # psycopg 3
        with raw.cursor() as cur:
            cur.execute(pg_sql(sql), params or [])
            names = _unique([d.name for d in cur.description])
            schema = {n: _PG_TYPES.get(d.type_code, pl.Object) for n, d in zip(names, cur.description)}
            rows = cur.fetchall()
        if not rows:
            return pl.DataFrame(schema={n: (t if t != pl.Object else pl.String) for n, t in schema.items()})
        # the cursor's types where known, so an all-null column keeps its type (not Null)
        known = {n: t for n, t in schema.items() if t != pl.Object}
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None, schema_overrides=known)
    table = raw.sql(sql, params=params or None).to_arrow_table()
    if len(set(table.column_names)) < table.num_columns:
        table = table.rename_columns(_unique(table.column_names))
    return pl.from_arrow(table)


_COPY_TYPES = (pl.String, pl.Float64, pl.Int64)


def copy_frame(raw, sql: str, schema: dict) -> pl.DataFrame:
    """A big read without parameters whose columns are text or numbers: :func:`frame`, but
    on PostgreSQL through ``COPY (sql) TO STDOUT (csv)`` read by polars, not rows of Python
    tuples (1M rows: 0.77 s against 3.7 s). Nothing is lost in the text: PostgreSQL writes
    NULL unquoted and '' quoted, which polars reads back apart; NaN and Infinity parse; and
    floats are printed in their shortest exact form (PostgreSQL 12 and later).

    Parameters
    ----------
    raw : duckdb.DuckDBPyConnection or psycopg.Connection
        The driver connection.
    sql : str
        The query; it takes no parameters.
    schema : dict
        ``{column: polars type}`` of the result, each ``pl.String``, ``pl.Float64`` or
        ``pl.Int64``; used on PostgreSQL only (DuckDB's result carries its own types).
    """
    if not hasattr(raw, "pgconn"):
        return frame(raw, sql)
    assert all(t in _COPY_TYPES for t in schema.values()), schema
    buf = io.BytesIO()
    with raw.cursor() as cur, cur.copy(f"copy ({sql}) to stdout (format csv, header)") as cp:
        for chunk in cp:
            buf.write(chunk)
    return pl.read_csv(buf.getvalue(), schema=schema)


def raw_rows(raw, sql: str, params: list | None = None) -> list:
    """A query's rows as tuples from a driver connection (DuckDB, or psycopg with its placeholders rewritten)."""
    _refuse_nul_in_read(params)
    if hasattr(raw, "pgconn"):
        with raw.cursor() as cur:
            cur.execute(pg_sql(sql), params or [])
            return cur.fetchall()
    return raw.execute(sql, params or []).fetchall()


def _add_missing(conn: sa.Connection) -> None:
    """Columns (nullable) and indexes the model has and the database does not yet."""
    pg = conn.dialect.name == "postgresql"
    for table in SQLModel.metadata.sorted_tables:
        # information_schema, not SQLAlchemy's inspector: duckdb_engine's needs pg_catalog views DuckDB 2 lacks
        have = {r[0] for r in conn.execute(sa.text(
            "select column_name from information_schema.columns where table_name = :t"
            + (" and table_schema = current_schema()" if pg else "")), {"t": table.name})}
        for col in table.columns:
            if col.name not in have:
                if not col.nullable:
                    raise StoreError(f"cannot add the required column {table.name}.{col.name} to an existing store")
                kind = col.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'alter table {table.name} add column "{col.name}" {kind}'))
        if pg:  # DuckDB's only indexes (index=True) date from their tables' creation
            for index in table.indexes:
                index.create(conn, checkfirst=True)


def _json_columns() -> list[tuple[str, str]]:
    """(table, column) of every typed JSON column of the model."""
    return [(t.name, c.name) for t in SQLModel.metadata.sorted_tables for c in t.columns if c.type is schema.JSON]


def _retype_json(conn: sa.Connection) -> None:
    """Schema 9: JSON kept as text becomes typed JSON, in place, on both backends. Text that is
    not JSON stops the upgrade (its transaction rolls back), naming the table and column."""
    pg = conn.dialect.name == "postgresql"
    for table, column in _json_columns():
        kind = conn.execute(sa.text(
            "select data_type from information_schema.columns where table_name = :t and column_name = :c"
            + (" and table_schema = current_schema()" if pg else "")), {"t": table, "c": column}).scalar()
        if kind is None or kind.lower() in ("json", "jsonb"):
            continue  # added by _add_missing with its type already, or already typed
        not_json = StoreError(f"{table}.{column} holds text that is not JSON; this store cannot be upgraded to "
                              "typed JSON until it is mended. Nothing was changed.")
        if pg:  # PostgreSQL 15 has no pg_input_is_valid: the cast itself refuses bad text
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f'alter table {table} alter column "{column}" type jsonb using "{column}"::jsonb'))
            except sa.exc.DBAPIError:
                raise not_json from None
            continue
        if conn.execute(sa.text(f'select count(*) from {table} where "{column}" is not null '
                                f'and not json_valid("{column}")')).scalar():
            raise not_json
        # DuckDB will not change a column's type while an index on its table exists: drop, change, remake
        indexes = [r[0] for r in conn.execute(sa.text(
            "select sql from duckdb_indexes() where table_name = :t and sql is not null"), {"t": table})]
        for (name,) in conn.execute(sa.text("select index_name from duckdb_indexes() where table_name = :t "
                                            "and sql is not null"), {"t": table}).all():
            conn.execute(sa.text(f'drop index "{name}"'))
        conn.execute(sa.text(f'alter table {table} alter column "{column}" type json using "{column}"::json'))
        for sql in indexes:
            conn.execute(sa.text(sql))


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul(conn, cursor, statement, parameters, context, executemany) -> None:
    """PostgreSQL text cannot hold NUL (0x00): refuse it before any statement, on both
    backends, so every store can move to PostgreSQL whole. Names and keys are checked where
    they enter, with their name; this catches free text (comments, reasons, card text)."""
    if parameters and _has_nul(parameters):
        raise ValidationError("A text contains a NUL character (0x00), which the store cannot keep: "
                              "remove it. Nothing of this change was saved.")


def _refuse_nul_in_read(params) -> None:
    """A value to look up with NUL (0x00) in it: no stored text holds one, and PostgreSQL refuses
    it outright. Refused on both backends alike, before the query."""
    if params and _has_nul(params):
        raise ValidationError("A value contains a NUL character (0x00), which no stored text holds: remove it.")


_live_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()
_abandoned: list = []  # connections a forked child inherited: never used, never closed (see below)


def _release_before_fork() -> None:
    # A child must not inherit an open DuckDB database: DuckDB caches it per path, so the
    # child's next connect would reuse the parent's copy in memory and write the file without
    # its lock. Handing the file back first (committed and checkpointed) leaves nothing open.
    for store in list(_live_stores):
        if store.path is not None and store._lock.acquire(timeout=5):
            try:
                store.release()
            except Exception:  # noqa: BLE001 - a fork must not fail over a checkpoint
                pass
            finally:
                store._lock.release()


def _reset_in_child() -> None:
    for store in list(_live_stores):
        store._after_fork_in_child()


os.register_at_fork(before=_release_before_fork, after_in_child=_reset_in_child)


class Store:
    """A leased connection to one store file, safe to share between threads.

    Opening checks the file, creates a new store at a DuckDB path that does not exist yet (or
    in an empty PostgreSQL database), and migrates an older schema in place. A process shares
    one Store per store (:func:`workbench.store.shared.shared_store`).

    Parameters
    ----------
    location : str, path or None
        A DuckDB file path, a ``duckdb://`` URL or a PostgreSQL URL; default
        ``$WORKBENCH_STORE``, else :data:`DEFAULT_STORE`.
    lease_seconds : float, optional
        Idle seconds before the connection is closed and the file handed back; default
        ``$WORKBENCH_LEASE_SECONDS``, else 0.3.
    lock_timeout : float, optional
        Seconds to keep retrying while another process holds the file (or, on PostgreSQL,
        the write lock); default ``$WORKBENCH_LOCK_TIMEOUT``, else 120.
    accept_log_loss : bool, default False
        Open a DuckDB file even though its write-ahead log is behind the head mark; only for
        :func:`workbench.store.recovery.accept_log_loss`.

    Raises
    ------
    StoreError
        The location cannot hold a store (not a DuckDB file, another program's database, a
        store from a newer workbench, an unwritable folder, ...).
    DamagedLogError
        The write-ahead log of a DuckDB file cannot be replayed whole, or lost committed
        events (see :mod:`workbench.store.headmark`); the file was left as it was.
    StoreLockedError
        Another process held the file for ``lock_timeout`` seconds.

    Example::

        store = Store("data/workbench.duckdb")
        with store.transaction() as conn:
            conn.execute(sa.text("select 1"))
    """

    def __init__(
        self,
        location: str | os.PathLike | None = None,
        *,
        lease_seconds: float | None = None,
        lock_timeout: float | None = None,
        accept_log_loss: bool = False,
    ) -> None:
        self.location = resolve_store(location)
        self.lease_seconds = float(lease_seconds if lease_seconds is not None else os.environ.get("WORKBENCH_LEASE_SECONDS", 0.3))
        self.lock_timeout = float(lock_timeout if lock_timeout is not None else os.environ.get("WORKBENCH_LOCK_TIMEOUT", 120))
        self.is_postgres = is_postgres(self.location)
        if self.is_postgres:
            url = sa.engine.make_url(self.location).set(drivername="postgresql+psycopg")
            self.path = None
            self.display = url.render_as_string(hide_password=True)
            # a pool: no file to free between uses; sessions in UTC so times read back as UTC
            self._engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8,
                                            json_serializer=canonical_json, json_deserializer=loads,
                                            connect_args={"options": "-c TimeZone=UTC",
                                                          "application_name": f"workbench pid {os.getpid()}"})
        else:
            self.path = store_path(self.location).resolve()
            self.display = str(self.path)
            self.location = str(self.path)
            _check_file(self.path)
            self._engine = sa.create_engine(
                "duckdb:///" + str(self.path),
                poolclass=NullPool,
                json_serializer=canonical_json, json_deserializer=loads,
                connect_args={"config": dict(DUCKDB_CONFIG)},
            )
            sa.event.listen(self._engine, "connect", _finish_results)
        sa.event.listen(self._engine, "before_cursor_execute", _refuse_nul)
        self._lock = threading.RLock()
        self._conn: sa.Connection | None = None
        self._last_use = 0.0
        self._releaser: threading.Thread | None = None
        self._closed = False
        self.experiment_ids: dict[str, int] = {}  # name -> id; experiments are never deleted
        self._artifact_root: str | None = None  # store_info.artifact_root, read once
        self.accept_log_loss = accept_log_loss  # `workbench recover` only: open past a damaged log
        #: The address this process serves the store at (set by ``workbench serve``), else None:
        #: what a retraining command the server runs connects to.
        self.server_url: str | None = None
        _live_stores.add(self)
        self._ensure_schema()

    def _after_fork_in_child(self) -> None:
        """The parent's connection (if a fork came while it was held) and locks are not ours."""
        if self._conn is not None:
            _abandoned.append(self._conn)  # closing it could checkpoint the parent's file
            self._conn = None
        self._lock = threading.RLock()
        self._releaser = None
        if self.is_postgres:
            self._engine.dispose(close=False)  # the pool's sockets belong to the parent

    @property
    def artifact_root(self) -> Path:
        """Where content-addressed files live (see :func:`artifact_root_of`)."""
        if self._artifact_root is None and not os.environ.get("WORKBENCH_ARTIFACTS"):
            self._artifact_root = self.scalar("select artifact_root from store_info") or ""
        return artifact_root_of(self.path, self._artifact_root)

    # -- connection lease -------------------------------------------------------------
    def _open(self) -> sa.Connection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                if self.path is not None:  # a running server holds the file: say so now, do not wait
                    served.refuse_if_served(self.path)
                self._check_log()
                return self._engine.connect()
            except (sa.exc.DBAPIError, _Locked) as exc:
                msg = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
                if "Could not set lock" not in msg:
                    raise self._explain_open_error(msg) from None
                if time.monotonic() + delay > deadline:
                    m = _LOCK_RE.search(msg)
                    holder = f"process {m['pid']} ({m['exe']})" if m else "another process"
                    raise StoreLockedError(
                        f"Store {self.display} is held by {holder} and stayed locked for "
                        f"{self.lock_timeout:.0f} s. Close that process (or its notebook "
                        "kernel) or raise WORKBENCH_LOCK_TIMEOUT."
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _check_log(self) -> None:
        """Before a DuckDB file with a write-ahead log is opened for writing (which replays the
        log and then removes it), replay it read-only and compare the chain with the head mark."""
        if self.path is None or self.accept_log_loss or not headmark.log_of(self.path).exists():
            return
        mark = headmark.read(self.path)
        if mark is None:
            return
        import duckdb

        try:
            raw = duckdb.connect(str(self.path), read_only=True, config=dict(DUCKDB_CONFIG))
        except duckdb.Error as exc:
            msg = str(exc)
            if "Could not set lock" in msg:
                raise _Locked(msg) from None
            if "different configuration" in msg:
                return  # this process has the file open already: the log was replayed then
            raise self._explain_open_error(msg) from None
        try:
            tables = {r[0] for r in raw.execute("select table_name from information_schema.tables").fetchall()}
            head = raw.execute("select seq, hash from audit_head").fetchone() if "audit_head" in tables else None
            seq = head[0] if head else 0
            at_mark = None
            if head and seq >= mark["seq"]:
                row = raw.execute("select hash from audit_events where seq = ?", [mark["seq"]]).fetchone()
                at_mark = row[0] if row else ""
        finally:
            raw.close()
        why = headmark.behind(mark, seq, at_mark)
        if why:
            raise headmark.DamagedLogError(headmark.damaged_log_message(self.path, why))

    def _explain_open_error(self, msg: str) -> StoreError:
        if "not a valid DuckDB database" in msg or "Could not read enough bytes" in msg:
            return StoreError(f"{self.path} is corrupt or not a DuckDB database: it cannot be used as a store.")
        if "wal" in msg.lower():  # DuckDB's WAL-replay errors also mention "version"
            return headmark.DamagedLogError(headmark.damaged_log_message(self.path, f"DuckDB cannot replay it ({msg})"))
        if "newer" in msg.lower() or "version" in msg.lower():
            return StoreError(f"{self.path} was written by another DuckDB version: {msg}")
        return StoreError(f"Cannot open store {self.display}: {msg}")

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """The leased connection, held by this thread for the block.

        Opened when no connection is leased (waiting up to ``lock_timeout`` for the file), and
        released after ``lease_seconds`` without use.

        Raises
        ------
        StoreError
            If the Store was closed, or the file cannot be opened.
        StoreLockedError
            If another process held the file for ``lock_timeout`` seconds.
        """
        with self._lock:
            if self._closed:
                raise StoreError("This workspace was closed.")
            if self._conn is None:
                self._conn = self._open()
                self._start_releaser()
            try:
                yield self._conn
            finally:
                self._last_use = time.monotonic()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction: everything in the block commits together or not at all."""
        with self.connection() as conn:
            if conn.in_transaction():  # SQLAlchemy autobegins on reads; start clean
                conn.commit()
            conn.info.pop("audit_head", None)  # audit.append leaves this transaction's head here
            with conn.begin():
                yield conn

    @contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read-only transaction whose queries all see one moment (a chain and its head).

        DuckDB's transactions are snapshots already. PostgreSQL's default (read committed)
        lets each statement see newer commits, so other processes' writes would land between
        two queries: ask for repeatable read.
        """
        with self.connection() as conn:
            if conn.in_transaction():
                conn.commit()
            with conn.begin():
                if self.is_postgres:
                    conn.execute(sa.text("set transaction isolation level repeatable read, read only"))
                yield conn

    def lock_for_write(self, conn: sa.Connection) -> None:
        """On PostgreSQL, take the audit head's row lock first in a write transaction.

        One writer at a time, as with DuckDB's file: every write appends to the audit chain,
        so its head orders them (and check-then-insert ops are safe). Waiting is bounded by
        ``lock_timeout``, as for the file, and ends in :class:`StoreLockedError`.
        """
        if not self.is_postgres:
            return  # DuckDB: holding the file is the lock
        conn.execute(sa.text(f"set local lock_timeout = {max(1, int(self.lock_timeout * 1000))}"))
        try:
            conn.execute(sa.text("select seq from audit_head where id = 1 for update"))
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":
                raise
            holder = self._pg_head_holder()
            raise StoreLockedError(
                f"Store {self.display}: another writer ({holder}) held the write lock for "
                f"{self.lock_timeout:.0f} s. Let it finish, or raise WORKBENCH_LOCK_TIMEOUT."
            ) from None

    def _pg_head_holder(self) -> str:
        """Who holds the audit head's lock, from a fresh connection (ours is aborted)."""
        sql = ("select a.pid, a.application_name, a.client_addr from pg_locks l "
               "join pg_stat_activity a on a.pid = l.pid "
               "where l.relation = 'audit_head'::regclass and l.granted and a.pid <> pg_backend_pid() "
               "order by a.xact_start limit 1")
        try:
            with self._engine.connect() as other:
                row = other.execute(sa.text(sql)).first()
        except sa.exc.DBAPIError:
            row = None
        if row is None:
            return "another session"
        where = f" from {row[2]}" if row[2] else ""
        return f"PostgreSQL process {row[0]}, {row[1] or 'unnamed client'}{where}"

    def read(self, sql: str, params: list | dict | None = None) -> pl.DataFrame:
        """Run a read query and return a polars DataFrame (via Arrow, no row loop)."""
        with self.connection() as conn:
            raw = conn.connection.dbapi_connection
            try:
                return frame(raw, sql, params)
            finally:
                if conn.in_transaction():
                    conn.commit()
                self.end_raw(conn)

    def scalar(self, sql: str, params: list | None = None) -> Any:
        """The first column of a read query's first row, or None when it returns no rows."""
        with self.connection() as conn:
            rows = raw_rows(conn.connection.dbapi_connection, sql, params)
            if conn.in_transaction():
                conn.commit()
            self.end_raw(conn)
            return rows[0][0] if rows else None

    def end_raw(self, conn: sa.Connection) -> None:
        """psycopg opened a transaction for raw reads that SQLAlchemy does not know of: end it."""
        if self.is_postgres and not conn.in_transaction():
            conn.connection.dbapi_connection.commit()

    def release(self) -> None:
        """Close the connection now, so other processes can open the file.

        A DuckDB file is checkpointed first: what was committed moves from the write-ahead log
        into the file itself, so a copy of the file alone holds every commit.
        """
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.in_transaction():
                        self._conn.commit()
                    self._checkpoint(self._conn)
                finally:
                    self._conn.close()
                    self._conn = None

    def _checkpoint(self, conn: sa.Connection) -> None:
        if self.path is None:
            return
        try:
            conn.exec_driver_sql("checkpoint")
        except sa.exc.DBAPIError:  # e.g. a read still open elsewhere: the log keeps it, and the mark guards it
            conn.rollback()
        if conn.in_transaction():
            conn.commit()

    def head_if_marked(self, conn: sa.Connection):
        """(seq, hash) of the chain's head, read inside a write transaction, where a head mark is kept."""
        if self.path is None:
            return None
        return conn.info.pop("audit_head", None) or conn.exec_driver_sql("select seq, hash from audit_head").first()

    def after_commit(self, conn: sa.Connection, head, *, checkpoint: bool) -> None:
        """Right after a write transaction committed on ``conn`` (the lease still held): record the
        chain's ``head`` beside a DuckDB file, and checkpoint when asked (after governance writes)."""
        if self.path is None:
            return
        if checkpoint:
            self._checkpoint(conn)
        if head is not None:
            headmark.write(self.path, head[0], head[1])

    def mark_problem(self, conn: sa.Connection) -> str | None:
        """Why the chain in this store has lost committed events (per the head mark), or None."""
        if self.path is None:
            return None
        mark = headmark.read(self.path)
        if mark is None:
            return None
        head = conn.execute(sa.text("select seq from audit_head")).first()
        seq = head[0] if head else 0
        row = conn.execute(sa.text("select hash from audit_events where seq = :s"), {"s": mark["seq"]}).first()
        return headmark.behind(mark, seq, (row[0] if row else "") if seq >= mark["seq"] else None)

    def backup(self, out: str | os.PathLike) -> dict:
        """A consistent copy of a DuckDB store: checkpointed, then copied while the file is held.

        The copy gets its own head mark (``<out>.head``), so ``audit verify`` on it checks that
        its chain reaches the head it was copied with.

        Parameters
        ----------
        out : str or path
            The new file; ``~`` is expanded.

        Returns
        -------
        dict
            ``{"path", "bytes", "sha256", "seq", "hash"}``: what was copied and the chain head it holds.

        Raises
        ------
        StoreError
            For a PostgreSQL store (back it up with PostgreSQL's tools).
        ValidationError
            If ``out`` exists already or its folder does not.
        """
        import hashlib
        import shutil

        if self.path is None:
            raise StoreError("A PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump, or a base "
                             "backup with its WAL archive); `workbench migrate` also copies it into a DuckDB file.")
        target = Path(out).expanduser().resolve()
        if target == self.path or target.exists():
            raise ValidationError(f"{target} exists already: a backup never overwrites a file; choose a new path.")
        if not target.parent.is_dir():
            raise ValidationError(f"Folder {target.parent} does not exist.")
        with self.connection() as conn:  # held: no other process can write while the bytes are copied
            if conn.in_transaction():
                conn.commit()
            conn.exec_driver_sql("checkpoint")
            head = conn.exec_driver_sql("select seq, hash from audit_head").first()
            conn.commit()
            tmp = target.with_name(f".{target.name}.partial")
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, target)
        seq, digest = (head[0], head[1]) if head else (0, "0" * 64)
        headmark.write(target, seq, digest)
        sha = hashlib.sha256()
        with open(target, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return {"path": str(target), "bytes": target.stat().st_size, "sha256": sha.hexdigest(), "seq": seq, "hash": digest}

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed Store refuses new connections."""
        return self._closed

    def close(self) -> None:
        """:meth:`release` the connection and dispose of the engine; the Store cannot be used again."""
        self.release()
        self._closed = True
        self._engine.dispose()

    def _start_releaser(self) -> None:
        if self._releaser is not None and self._releaser.is_alive():
            return
        self._releaser = threading.Thread(target=self._release_when_idle, name="workbench-lease", daemon=True)
        self._releaser.start()

    def _release_when_idle(self) -> None:
        while True:
            time.sleep(self.lease_seconds / 3)
            if not self._lock.acquire(timeout=0.05):
                continue  # in use right now
            try:
                if self._conn is None:
                    return
                if time.monotonic() - self._last_use >= self.lease_seconds:
                    self.release()
                    return
            finally:
                self._lock.release()

    # -- schema -----------------------------------------------------------------------
    def _migrate(self, conn: sa.Connection, found: int) -> None:
        """Bring an older store up to this version in place: changes are additive only (new
        tables, nullable columns and indexes), so the same step runs on both backends."""
        from . import (
            audit,  # here: audit imports store.schema, this module is imported first
        )

        with conn.begin():
            self.lock_for_write(conn)  # the migration's event joins the chain in order
            SQLModel.metadata.create_all(conn, checkfirst=True)  # new tables, with their indexes
            _add_missing(conn)  # new columns and indexes of existing tables
            if found < 9:
                _retype_json(conn)
            conn.execute(sa.update(schema.StoreInfo.__table__).values(schema_version=schema.SCHEMA_VERSION))
            audit.append(conn, [audit.Event("workbench", "system", "store.migrate", "store", (self.path.name if self.path else self.display),
                                            {"from": found, "to": schema.SCHEMA_VERSION, "by": __version__})])

    def _ensure_schema(self) -> None:
        try:
            self._check_schema()
        except sa.exc.DBAPIError as exc:  # a file that opens but cannot be read (truncated, damaged)
            try:
                self.release()  # the file is not held on to
            except sa.exc.DBAPIError:
                pass
            raise self._explain_open_error(str(exc.orig) if exc.orig is not None else str(exc)) from None

    def _check_schema(self) -> None:
        if not self.is_postgres:
            return self._check_schema_locked()
        # processes opening a new database at once: one creates the schema, the others wait
        with self.connection() as conn:
            conn.execute(sa.text("select pg_advisory_lock(7291)"))
            conn.commit()
            try:
                self._check_schema_locked()
            finally:
                if conn.in_transaction():
                    conn.rollback()
                conn.execute(sa.text("select pg_advisory_unlock(7291)"))
                conn.commit()

    def _check_schema_locked(self) -> None:
        # Only a path that did not exist before we open it becomes a new store: DuckDB creates
        # the file on connect, so look first. A DuckDB file without tables that was already
        # there was made by someone else (or a store whose creation never committed): refuse it
        # rather than fill another program's database with our tables. (A PostgreSQL store is
        # created in an empty database on purpose: that is how one is set up.)
        new_file = self.path is not None and not self.path.exists()
        with self.connection() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            conn.commit()
            if "store_info" in tables:
                row = conn.execute(sa.text("select schema_version, created_with from store_info")).first()
                conn.commit()
                if row is not None and row[0] < schema.SCHEMA_VERSION:
                    self._migrate(conn, row[0])
                    return
                if row is not None and row[0] > schema.SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.display} has schema version {row[0]} (written by workbench {row[1]}); "
                        f"this workbench {__version__} reads up to version {schema.SCHEMA_VERSION}. "
                        "Upgrade workbench to open it."
                    )
                return
            if tables:
                raise StoreError(
                    f"{self.display} is a DuckDB database but not a workbench store "
                    f"(it has tables {sorted(tables)[:5]} and no store_info). Use another path."
                )
            if self.path is not None and not new_file:
                raise StoreError(
                    f"{self.path} is a DuckDB database with no tables, not a workbench store: it was there before "
                    "workbench opened it, and workbench creates a store only at a path that does not exist yet. "
                    "If nothing else needs that file, remove it and run the command again to create a store "
                    "there; otherwise point --store / WORKBENCH_STORE at a new path."
                )
            with conn.begin():
                SQLModel.metadata.create_all(conn)
                if self.is_postgres:  # every append locks this row: it must exist before the first
                    conn.execute(sa.insert(schema.AuditHead.__table__).values(id=1, seq=0, hash="0" * 64))
                conn.execute(
                    sa.insert(schema.StoreInfo.__table__).values(
                        id=1,
                        schema_version=schema.SCHEMA_VERSION,
                        created_at=schema.utcnow(),
                        created_with=__version__,
                    )
                )
