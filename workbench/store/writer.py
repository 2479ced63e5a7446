"""The one write path: every change goes through :class:`Writer`, with its audit events.

A write is an *op*: a function ``op(conn) -> (result, events)`` run inside a transaction,
or a :class:`RunBatch` (a run's buffered rows). The writer thread drains whatever has
queued up and commits it as one transaction (group commit), so 200 short runs cost a few
commits, not 200. Consecutive run batches are merged into one Arrow append per table.
Every op must return at least one audit event; they are appended in the same transaction,
so a write without its event cannot happen.

Run batches logged during a run are asynchronous (``submit``); a run's last batch
(``commit``) and entity writes that need a result (``call``) wait until committed, so a run
that has ended is stored whatever happens to the process next. Waiting callers are not held
back to gather more, but whatever queued while a commit was in flight goes in the next one,
so concurrent runs still share commits. Reads call :meth:`Writer.flush` first, so a process
always reads its own writes.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa
import sqlalchemy as sa

from ..errors import StoreLockedError, WorkbenchError
from . import audit
from .canonical import loads

Op = Callable[[sa.Connection], "tuple[Any, list[audit.Event]]"]


@dataclass
class RunBatch:
    """Rows a run has buffered since its last flush."""

    run_id: str
    insert: dict | None = None  # the runs row, on the first flush
    update: dict | None = None  # status/end_time/error, on the last flush
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    # metric points, one chunk per log_metrics call: (keys, values, step or steps, epoch us)
    chunks: list[tuple[list[str], list[float], "int | list[int]", int]] = field(default_factory=list)
    n_points: int = 0
    events: list[audit.Event] = field(default_factory=list)
    waited: bool = False  # a caller waits for its commit (a run's end): errors go to it

    def add_points(self, keys: list[str], values: list[float], steps: "int | list[int]", ts_us: int) -> None:
        """Buffer one ``log_metrics`` call's points as a chunk.

        Parameters
        ----------
        keys, values : list
            The metric keys and their values, in the same order.
        steps : int or list of int
            One step for every key, or each key's own step.
        ts_us : int
            When they were logged, in microseconds since the epoch (UTC).
        """
        self.chunks.append((keys, values, steps, ts_us))
        self.n_points += len(keys)

    def point_keys(self) -> list[str]:
        """The distinct metric keys of the buffered points, sorted."""
        return sorted({k for keys, *_ in self.chunks for k in keys})


_live: "weakref.WeakSet[Writer]" = weakref.WeakSet()
_exit_hook: list[bool] = []


def _register_exit_hook() -> None:
    # Exit hooks run last-registered first. DuckDB's own hook refuses queries from then
    # on, so ours is registered once DuckDB is loaded (a writer exists), not at import.
    if not _exit_hook:
        atexit.register(_flush_all_at_exit)
        _exit_hook.append(True)


def _flush_all_at_exit() -> None:
    # Not what makes data safe (a run's end and every entity write are committed before they
    # return): this sends what open runs' background batches still hold, and hands the file
    # back checkpointed.
    for w in list(_live):
        try:
            w.flush()
            w.store.release()
        except WorkbenchError as exc:  # nothing else can be done this late: say it
            print(f"workbench: could not save pending writes at exit: {exc}", file=sys.stderr)


def _reset_writers_in_child() -> None:
    for w in list(_live):
        w._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_writers_in_child)


class Writer:
    """The store's one write path in this process: a thread that commits queued writes in groups.

    Each group is one transaction, with the write lock taken first (on PostgreSQL) and every
    op's audit events appended; after the commit the chain's head is recorded beside a DuckDB
    file. When a group fails, each of its writes is retried alone, so one bad op fails only its
    own caller; a group refused by a lock timeout fails whole, and its run batches are kept
    and retried at the next :meth:`flush`. Take the shared one from
    :func:`workbench.store.shared.shared_store`.

    Parameters
    ----------
    store : Store
        The store it writes to.
    """

    group_seconds = 0.05  # how long run batches may gather before a commit
    group_max = 2000  # ... or until this many are queued

    def __init__(self, store) -> None:
        self.store = store
        self._queue: deque[tuple[Any, Future]] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._errors: list[BaseException] = []
        self._parked: list[RunBatch] = []  # held back by a lock timeout; never dropped
        self._urgent = False  # a caller waits (call() or flush()): commit without gathering
        self._thread: threading.Thread | None = None
        _live.add(self)
        _register_exit_hook()

    # -- public ------------------------------------------------------------------------
    def submit(self, item: RunBatch | Op) -> Future:
        """Queue a write and return at once.

        Parameters
        ----------
        item : RunBatch or callable
            A run's buffered rows, or an op ``op(conn) -> (result, events)`` that returns at
            least one audit event.

        Returns
        -------
        concurrent.futures.Future
            Resolved with the op's result (None for a run batch) once committed, or with its
            error. A run batch nobody waits for (``waited`` False) may gather with others for up
            to :attr:`group_seconds`; its error is also raised by the next :meth:`flush`.
        """
        fut: Future = Future()
        with self._cv:
            self._queue.append((item, fut))
            if not isinstance(item, RunBatch) or item.waited:
                self._urgent = True  # somebody waits for this write
            self._start()
        return fut

    def commit(self, batch: RunBatch) -> None:
        """Write ``batch`` and return once it is committed; raise its error if it failed.

        A run's end goes through here: acknowledged means committed, not queued.
        """
        batch.waited = True
        self.submit(batch).result()

    def _start(self) -> None:
        """Wake the writer thread (caller holds the condition)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="workbench-writer", daemon=True)
            self._thread.start()
        self._cv.notify_all()

    def call(self, op: Op) -> Any:
        """Run ``op`` after everything queued before it; return its result or raise its error.

        ``op(conn) -> (result, events)`` runs inside a group's transaction and must return at
        least one audit event. When a group of several writes fails, each runs again alone, ``op``
        included, so it should change nothing outside the transaction; an error it raises fails
        only its own call.
        """
        return self.submit(op).result()

    def flush(self) -> None:
        """Wait until every queued write is committed; raise if a background write failed."""
        with self._cv:
            self._urgent = True
            if self._parked:  # batches a lock timeout held back: try them again first
                self._queue.extendleft((b, Future()) for b in reversed(self._parked))
                self._parked.clear()
                self._start()
            self._cv.wait_for(lambda: not self._queue and not self._busy)
            errors, self._errors = self._errors, []
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            if isinstance(first, WorkbenchError):
                raise type(first)(f"{first}{more}") from first
            raise WorkbenchError(f"A background write failed: {first!r}{more}") from first

    # -- writer thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                if not self._queue:
                    self._cv.wait(timeout=1.0)
                    if not self._queue:
                        self._thread = None
                        return
                # Run batches nobody waits for: let more gather (fewer, larger commits, and
                # less GIL contention with the thread still logging), unless someone waits.
                deadline = time.monotonic() + self.group_seconds
                while not self._urgent and len(self._queue) < self.group_max:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(timeout=left)
                self._urgent = False
                group = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._commit_group(group)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _commit_group(self, group: list[tuple[Any, Future]]) -> None:
        try:
            with self.store.connection() as held:  # the lease stays ours until the head is recorded
                with self.store.transaction() as conn:
                    self.store.lock_for_write(conn)
                    results = self._apply(conn, group)
                    head = self.store.head_if_marked(conn)  # read in the transaction: no second one for it
                self._after_commit(held, group, head)
        except Exception as exc:
            if os.environ.get("WORKBENCH_DEBUG"):
                print(f"workbench writer: group of {len(group)} failed: {exc!r}", file=sys.stderr)
            if len(group) == 1 or isinstance(exc, StoreLockedError):
                self._fail(group, exc)
            else:  # one bad op must not sink the others: retry each on its own
                for item in group:
                    self._commit_group([item])
            return
        for (_, fut), res in zip(group, results):
            fut.set_result(res)

    def _after_commit(self, conn: sa.Connection, group, head) -> None:
        # Governance and other entity writes reach the file itself at once; run data waits
        # for the checkpoint when the lease is released (a few hundred ms idle). The group is
        # committed already: a failure here is reported, never treated as the write's.
        try:
            self.store.after_commit(conn, head, checkpoint=any(not isinstance(item, RunBatch) for item, _ in group))
        except Exception as exc:  # noqa: BLE001
            print(f"workbench: committed, but could not record the chain's head beside the store: {exc!r}",
                  file=sys.stderr)

    def _fail(self, group, exc: BaseException) -> None:
        for item, fut in group:
            fut.set_exception(exc)
            if isinstance(item, RunBatch):
                if not item.waited:  # nobody waits on these: report at flush()
                    self._errors.append(exc)
                if isinstance(exc, StoreLockedError):
                    item.waited = False  # its caller has been told; a later flush() reports again
                    self._parked.append(item)  # kept, and retried by the next flush()

    def _after_fork_in_child(self) -> None:
        """A forked child starts with an empty writer: the parent's queue is the parent's to commit,
        and its thread and condition (perhaps held at the fork) do not exist here."""
        self._queue = deque()
        self._cv = threading.Condition()
        self._busy = self._urgent = False
        self._errors, self._parked = [], []
        self._thread = None

    def _apply(self, conn: sa.Connection, group) -> list[Any]:
        results: list[Any] = []
        pending: list[RunBatch] = []
        for item, _ in group:
            if isinstance(item, RunBatch):
                pending.append(item)
                results.append(None)
                continue
            if pending:
                _write_run_batches(conn, pending)
                pending = []
            result, events = item(conn)
            if not events:
                raise AssertionError(f"write {item!r} returned no audit event")
            audit.append(conn, events)
            results.append(result)
        if pending:
            _write_run_batches(conn, pending)
        return results


_PG_COLUMN_TYPES = {"experiment_id": "int8", "start_time": "timestamptz", "end_time": "timestamptz",
                    "pid": "int8"}  # pid: null for a run a server started for a remote client
_ARROW_TO_PG = {pa.string(): "text", pa.large_string(): "text", pa.float64(): "float8", pa.int64(): "int8",
                pa.bool_(): "bool", pa.timestamp("us", tz="UTC"): "timestamptz"}


def _pg_type(f: pa.Field) -> str:
    if f.name in _PG_COLUMN_TYPES:
        return _PG_COLUMN_TYPES[f.name]
    if pa.types.is_timestamp(f.type):
        return "timestamptz"
    return _ARROW_TO_PG.get(f.type, "text")


def copy_batches(cur, statement: str, types: list[str], batches) -> int:
    """Binary ``COPY ... FROM STDIN`` of Arrow tables or record batches; returns the rows sent.
    A ``jsonb`` column's values arrive as JSON text and are sent as the values they spell."""
    n = 0
    with cur.copy(statement) as cp:
        cp.set_types(types)
        for batch in batches:
            columns = [[None if v is None else loads(v) for v in c.to_pylist()] if t == "jsonb" else c.to_pylist()
                       for c, t in zip(batch.columns, types)]
            for row in zip(*columns):
                cp.write_row(row)
            n += batch.num_rows
    return n


def _append_pg(conn: sa.Connection, data: pa.Table, sql: str) -> None:
    """PostgreSQL: COPY the rows into a temporary ``batch`` table (binary), then run ``sql``."""
    raw = conn.connection.dbapi_connection
    types = [_pg_type(f) for f in data.schema]
    cols = ", ".join(f'"{f.name}" {t}' for f, t in zip(data.schema, types))
    with raw.cursor() as cur:
        cur.execute(f"create temp table batch ({cols}) on commit drop")
        copy_batches(cur, "copy batch from stdin (format binary)", types, [data])
        cur.execute(sql)
        cur.execute("drop table batch")


def _append(conn: sa.Connection, data: pa.Table, *statements: str) -> None:
    """Insert an Arrow table through DuckDB's zero-copy scan: each statement reads from ``batch``,
    registered once for all of them."""
    if conn.dialect.name == "postgresql":
        for sql in statements:
            _append_pg(conn, data, _PG_SQL.get(sql, sql))
        return
    raw = conn.connection.dbapi_connection
    raw.register("batch", data)
    try:
        for sql in statements:
            raw.execute(sql).fetchall()  # DuckDB 2 wants every result finished before the next statement
    finally:
        try:
            raw.unregister("batch")
        except Exception:  # an aborted transaction refuses this too: keep the real error
            pass


_VALUES_MAX_ROWS = 64  # beyond this an Arrow scan is cheaper than binding each value


def _insert(conn: sa.Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Insert a few rows: one multi-row ``values`` statement in DuckDB (a statement costs about
    as much as an Arrow registration, and this needs one, not three), else an Arrow append."""
    if conn.dialect.name == "duckdb" and len(rows) <= _VALUES_MAX_ROWS:
        one = "(" + ", ".join("?" * len(columns)) + ")"
        conn.connection.dbapi_connection.execute(
            f"insert into {table} ({', '.join(columns)}) values " + ", ".join([one] * len(rows)),
            [v for r in rows for v in r])
        return
    cols = list(zip(*rows))
    _append(conn, pa.table({c: list(v) for c, v in zip(columns, cols)}),
            f"insert into {table} ({', '.join(columns)}) select {', '.join(columns)} from batch")


_RUN_COLUMNS = ["run_id", "experiment_id", "name", "status", "user_name", "start_time", "end_time", "error",
                "parent_run_id", "git_commit", "source", "host", "pid"]


def _write_run_batches(conn: sa.Connection, batches: list[RunBatch]) -> None:
    # A run that starts and ends in one batch (most short runs) is inserted ended: one
    # statement fewer in every such commit.
    inserts = [{"end_time": None, "error": None, **b.insert, **(b.update or {})} for b in batches if b.insert]
    if inserts:
        _insert(conn, "runs", _RUN_COLUMNS, [tuple(r.get(c) for c in _RUN_COLUMNS) for r in inserts])
    params = [(b.run_id, k, v) for b in batches for k, v in b.params]
    if params:
        _insert(conn, "params", ["run_id", "key", "value"], params)
    tags = [(b.run_id, k, v) for b in batches for k, v in b.tags.items()]
    if tags:
        r, k, v = zip(*tags)
        _append(conn, pa.table({"run_id": r, "key": k, "value": v}),
                "insert into tags select run_id, key, value from batch "
                "on conflict (run_id, key) do update set value = excluded.value")
    n = sum(b.n_points for b in batches)
    if n:
        run_ids: list[str] = []
        keys: list[str] = []
        values: list[float] = []
        steps: list[int] = []
        stamps: list[int] = []
        for b in batches:
            run_ids.extend([b.run_id] * b.n_points)
            for k, v, s, t in b.chunks:
                keys.extend(k)
                values.extend(v)
                steps.extend([s] * len(k) if isinstance(s, int) else s)
                stamps.extend([t] * len(k))
        data = pa.table({
            "run_id": pa.array(run_ids, pa.string()),
            "key": pa.array(keys, pa.string()),
            "value": pa.array(values, pa.float64()),
            "step": pa.array(steps, pa.int64()),
            "ts": pa.array(stamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "seq": pa.array(range(n), pa.int64()),  # log order breaks ties between equal steps
        })
        # A run's first flush has no latest values yet: a plain insert skips the conflict
        # checks of the upsert, which only runs for runs flushed before.
        latest = _INSERT_LATEST if all(b.insert is not None for b in batches if b.n_points) else _UPSERT_LATEST
        _append(conn, data, "insert into metrics select run_id, key, value, step, ts from batch", latest)
    updates = [dict(run_id=b.run_id, **b.update) for b in batches if b.update and not b.insert]
    if updates:
        _append(conn, pa.Table.from_pylist(updates),
                "update runs set status = batch.status, end_time = batch.end_time, error = batch.error "
                "from batch where runs.run_id = batch.run_id")
    events = [e for b in batches for e in b.events]
    if events:
        audit.append(conn, events)


# Latest = highest step, then latest logged. min/max skip NaN unless every value is NaN.
# The order key is one number, (step, seq) as step * 2**64 + seq: arg_max over a struct key
# returns -0.0 as 0.0 (DuckDB 2.0), a number key keeps the value's sign.
_LATEST_SELECT = """
select run_id, key,
       arg_max(value, step::hugeint * 18446744073709551616 + seq) as value,
       max(step) as step,
       max(ts) as ts,
       coalesce(min(value) filter (where not isnan(value)), 'nan'::double) as min_value,
       coalesce(max(value) filter (where not isnan(value)), 'nan'::double) as max_value,
       count(*) as n
from batch
group by run_id, key
"""
_INSERT_LATEST = "insert into latest_metrics " + _LATEST_SELECT
_UPSERT_LATEST = "insert into latest_metrics " + _LATEST_SELECT + """
on conflict (run_id, key) do update set
  value = case when excluded.step >= latest_metrics.step then excluded.value else latest_metrics.value end,
  step = greatest(excluded.step, latest_metrics.step),
  ts = greatest(excluded.ts, latest_metrics.ts),
  min_value = case when isnan(latest_metrics.min_value) then excluded.min_value
                   when isnan(excluded.min_value) then latest_metrics.min_value
                   else least(excluded.min_value, latest_metrics.min_value) end,
  max_value = case when isnan(latest_metrics.max_value) then excluded.max_value
                   when isnan(excluded.max_value) then latest_metrics.max_value
                   else greatest(excluded.max_value, latest_metrics.max_value) end,
  n = latest_metrics.n + excluded.n
"""

# PostgreSQL spelling: arg_max over (step, seq) -> first of array_agg ordered; isnan(x) -> x = 'NaN'.
_LATEST_SELECT_PG = """
select run_id, key,
       (array_agg(value order by step desc, seq desc))[1] as value,
       max(step) as step,
       max(ts) as ts,
       coalesce(min(value) filter (where value <> 'NaN'::float8), 'NaN'::float8) as min_value,
       coalesce(max(value) filter (where value <> 'NaN'::float8), 'NaN'::float8) as max_value,
       count(*) as n
from batch
group by run_id, key
"""
_PG_SQL = {
    _INSERT_LATEST: "insert into latest_metrics " + _LATEST_SELECT_PG,
    _UPSERT_LATEST: "insert into latest_metrics " + _LATEST_SELECT_PG
    + _UPSERT_LATEST.split(_LATEST_SELECT, 1)[1].replace("isnan(latest_metrics.min_value)", "latest_metrics.min_value = 'NaN'::float8")
    .replace("isnan(excluded.min_value)", "excluded.min_value = 'NaN'::float8")
    .replace("isnan(latest_metrics.max_value)", "latest_metrics.max_value = 'NaN'::float8")
    .replace("isnan(excluded.max_value)", "excluded.max_value = 'NaN'::float8"),
}
