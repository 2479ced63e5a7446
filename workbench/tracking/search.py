"""Run search: the filter language (see :mod:`workbench.tracking.filterlang`) over the store.

Searching 100k runs must answer in well under 100 ms, but joining the long
metrics/params/tags tables for every search costs several scans of a million rows. So
each process keeps a *run index*: one wide frame of every run (latest, min and max of
each metric, params, tags), rebuilt only when the store changed. Every write appends an
audit event, so the newest audit sequence number is an exact version of the data.
A filter is compiled against the index's generated column names (never user text) and
run by DuckDB over the Arrow table, with bound parameters.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import polars as pl

from ..store.connection import copy_frame, frame
from .filterlang import Operand, compile_filter

_ATTRIBUTE_COLUMNS = {"run_id": "run_id", "name": "run_name", "status": "status", "user": "user_name",
                      "start_time": "start_time", "end_time": "end_time", "experiment": "experiment",
                      "experiment_id": "experiment_id", "git_commit": "git_commit", "parent_run_id": "parent_run_id"}
_NULL = {"metrics": "CAST(NULL AS DOUBLE)", "params": "CAST(NULL AS VARCHAR)", "tags": "CAST(NULL AS VARCHAR)"}


@dataclass
class RunIndex:
    """One process's wide frame of every run of a store, for fast searches.

    Attributes
    ----------
    version : int
        The newest audit sequence number when the index was made: the data's version.
    runs : polars.DataFrame
        What a search returns: run attributes, ``metrics.*`` (latest values), ``params.*``
        and ``tags.*`` columns; newest run first.
    table : pyarrow.Table
        The same runs for filtering: ``row_nr``, the attributes, and generated columns
        ``c0``, ``c1`` ... for each (kind, key, aggregate).
    names : dict
        (kind, key, aggregate) -> its generated column name in ``table``.
    """

    version: int
    runs: pl.DataFrame  # what search returns: base columns, metrics.*, params.*, tags.*; newest first
    table: object  # pyarrow.Table: row number, attributes, and c0..cN for (kind, key, agg)
    names: dict  # (kind, key, agg) -> generated column name in ``table``

    def column(self, operand: Operand) -> str:
        """The column of ``table`` a filter operand reads, or a typed NULL for a key no run has."""
        if operand.kind == "attributes":
            return _ATTRIBUTE_COLUMNS[operand.key]
        agg = operand.agg if operand.kind == "metrics" else None
        return self.names.get((operand.kind, operand.key, agg), _NULL[operand.kind])


_lock = threading.Lock()
#: Store -> its run index in this process (kept here, not on the Store: the index is search's).
_indexes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_filter_lock = threading.Lock()
_filter_con = []


def _filter_db():
    if not _filter_con:
        import duckdb
        _filter_con.append(duckdb.connect(config={"autoinstall_known_extensions": False,
                                                  "autoload_known_extensions": False}))
    return _filter_con[0]


def run_index(store) -> RunIndex:
    """The store's run index, brought up to date when the newest audit event changed.

    Only the runs named by newer ``run`` events are reloaded (every change to a run
    appends one); the index is rebuilt whole on first use or when many runs changed.
    """
    version = store.scalar("select coalesce(max(seq), 0) from audit_events")
    with _lock:
        cached = _indexes.get(store)
        if cached is not None and cached.version == version:
            return cached
        idx = _refresh(store, cached, version) if cached is not None else None
        if idx is None:
            idx = _build(store, version)
        _indexes[store] = idx
        return idx


def forget_run_index(store) -> "RunIndex | None":
    """Drop this process's run index of ``store``: the next search builds it anew, as a new
    process's first search would (benchmarks time that). Returns the dropped index."""
    with _lock:
        return _indexes.pop(store, None)


@contextmanager
def rebuilt_run_index(store) -> Iterator[None]:
    """Within the block, searches of ``store`` build their index from scratch; the process's
    index (kept current by refreshes) is put back after, so the two can be compared."""
    kept = forget_run_index(store)
    try:
        yield
    finally:
        with _lock:
            if kept is not None:
                _indexes[store] = kept
            else:
                _indexes.pop(store, None)


_RUNS_SQL = ("select r.run_id, e.name as experiment, r.name as run_name, r.status, r.user_name, "
             "r.start_time, r.end_time, r.parent_run_id, r.git_commit, r.experiment_id "
             "from runs r join experiments e on e.id = r.experiment_id")
_REFRESH_MAX = 0.2  # more changed runs than this share of the index: rebuild instead
_NEWEST_FIRST = dict(by=["start_time", "run_id"], descending=[True, False])


_LONGS = {
    "metrics": ("select m.run_id, m.key, m.value, m.min_value, m.max_value from latest_metrics m",
                {"run_id": pl.String, "key": pl.String, "value": pl.Float64, "min_value": pl.Float64,
                 "max_value": pl.Float64}),
    "params": ("select p.run_id, p.key, p.value from params p", {"run_id": pl.String, "key": pl.String, "value": pl.String}),
    "tags": ("select t.run_id, t.key, t.value from tags t", {"run_id": pl.String, "key": pl.String, "value": pl.String}),
}


def _load(raw, changed: list | None) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    if changed is None:  # the whole index: millions of rows, so COPY on PostgreSQL
        runs = frame(raw, _RUNS_SQL)
        longs = {kind: copy_frame(raw, sql, schema) for kind, (sql, schema) in _LONGS.items()}
        return runs.sort(**_NEWEST_FIRST), longs
    where = " where {t}.run_id in (select unnest(?::varchar[]))"
    runs = frame(raw, _RUNS_SQL + where.format(t="r"), [changed])
    longs = {kind: frame(raw, sql + where.format(t=sql.split()[-1]), [changed]) for kind, (sql, _) in _LONGS.items()}
    return runs.sort(**_NEWEST_FIRST), longs


def _build(store, version: int) -> RunIndex:
    with store.connection() as conn:
        try:
            runs, longs = _load(conn.connection.dbapi_connection, None)
        finally:
            if conn.in_transaction():
                conn.commit()
            store.end_raw(conn)
    names: dict = {}
    out, filt = _assemble(runs, longs, names)
    return RunIndex(version, out, filt.with_row_index("row_nr").to_arrow(), names)


def _assemble(runs: pl.DataFrame, longs: dict, names: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Wide frames for ``runs``: the output (metrics.k ...) and the filter table (c0 ...)."""
    out = runs.drop("experiment_id")
    filt = runs.select(list(_ATTRIBUTE_COLUMNS.values()))
    for kind, long in longs.items():
        if long.is_empty():
            continue
        aggs = {"value": None, "min_value": "min", "max_value": "max"} if kind == "metrics" else {"value": None}
        for col, agg in aggs.items():
            wide = long.pivot(on="key", index="run_id", values=col, aggregate_function=None)
            keys = sorted(c for c in wide.columns if c != "run_id")
            gen = {k: names.setdefault((kind, k, agg), f"c{len(names)}") for k in keys}
            filt = filt.join(wide.select(["run_id", *keys]).rename(gen), on="run_id", how="left", maintain_order="left")
            if agg is None:
                out = out.join(wide.select(["run_id", *keys]).rename({k: f"{kind}.{k}" for k in keys}),
                               on="run_id", how="left", maintain_order="left")
    return out, filt


def _refresh(store, old: RunIndex, version: int) -> RunIndex | None:
    """``old`` with the runs changed since it was built reloaded; None when a rebuild is cheaper."""
    with store.connection() as conn:
        raw = conn.connection.dbapi_connection
        try:
            changed = frame(raw, "select distinct entity_id as run_id from audit_events "
                                 "where seq > ? and entity_type = 'run'", [old.version])
            if changed.is_empty():  # users, models ...: the runs are as they were
                return RunIndex(version, old.runs, old.table, old.names)
            if changed.height > _REFRESH_MAX * max(old.runs.height, 1000):
                return None
            runs, longs = _load(raw, changed["run_id"].to_list())
        finally:
            if conn.in_transaction():
                conn.commit()
            store.end_raw(conn)
    names = dict(old.names)
    new_out, new_filt = _assemble(runs, longs, names)
    old_filt = pl.from_arrow(old.table).drop("row_nr")
    stale = old.runs["run_id"].is_in(changed["run_id"].implode())
    old_out, old_filt = old.runs.filter(~stale), old_filt.filter(~stale)
    out = pl.concat([new_out, old_out], how="diagonal_relaxed")
    filt = pl.concat([new_filt, old_filt], how="diagonal_relaxed")
    if not (old_out.is_empty() or new_out.is_empty()):  # usually the changed runs are the newest
        last_new, first_old = new_out.row(-1, named=True), old_out.row(0, named=True)
        if (last_new["start_time"], first_old["run_id"]) < (first_old["start_time"], last_new["run_id"]):
            order = out.select(pl.int_range(pl.len()).sort_by(**_NEWEST_FIRST)).to_series()
            out, filt = out[order], filt[order]
    out, filt = out.rechunk(), filt.rechunk()
    out = out.select([*[c for c in out.columns if "." not in c],
                      *sorted((c for c in out.columns if "." in c),
                              key=lambda c: (("metrics", "params", "tags").index(c.split(".", 1)[0]), c))])
    return RunIndex(version, out, filt.with_row_index("row_nr").to_arrow(), names)


def search_runs(store, filter: str = "", experiment_id: int | None = None, max_results: int | None = None) -> pl.DataFrame:
    """The runs of ``store`` that match ``filter``, newest first.

    Parameters
    ----------
    store : Store
        The store to search.
    filter : str
        A filter (:mod:`workbench.tracking.filterlang`); empty: every run.
    experiment_id : int, optional
        Only this experiment's runs.
    max_results : int, optional
        At most this many rows; None (or 0) for all.

    Returns
    -------
    polars.DataFrame
        One row per run: attributes, then ``metrics.*``, ``params.*`` and ``tags.*`` columns.

    Raises
    ------
    FilterSyntaxError
        For an invalid filter (a :class:`ValidationError`).
    """
    idx = run_index(store)
    compiled = compile_filter(filter or "", columns=idx.column)
    where, params = compiled.where, list(compiled.params)
    if experiment_id is not None:
        where = f"({where}) and experiment_id = ?"
        params.append(experiment_id)
    if where == "TRUE":
        rows = None
    else:
        # The index is an Arrow table in this process: filter it with an in-memory DuckDB,
        # whatever the store is (the filter language compiles to DuckDB SQL).
        con = _filter_db()
        with _filter_lock:
            con.register("run_index", idx.table)
            try:
                rows = con.execute(f"select row_nr from run_index where {where} order by row_nr", params).fetchnumpy()["row_nr"]
            finally:
                con.unregister("run_index")
    result = idx.runs if rows is None else idx.runs[rows]
    return result.head(max_results) if max_results else result
