"""Run search: the filter language (see :mod:`workbench.filterlang`) over the store.

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
from dataclasses import dataclass

import polars as pl

from .filterlang import Operand, compile_filter
from .store.connection import frame

BASE_COLUMNS = ["run_id", "experiment", "run_name", "status", "user_name", "start_time", "end_time",
                "parent_run_id", "git_commit"]
_ATTRIBUTE_COLUMNS = {"run_id": "run_id", "name": "run_name", "status": "status", "user": "user_name",
                      "start_time": "start_time", "end_time": "end_time", "experiment": "experiment",
                      "experiment_id": "experiment_id", "git_commit": "git_commit", "parent_run_id": "parent_run_id"}
_NULL = {"metrics": "CAST(NULL AS DOUBLE)", "params": "CAST(NULL AS VARCHAR)", "tags": "CAST(NULL AS VARCHAR)"}


@dataclass
class RunIndex:
    version: int
    runs: pl.DataFrame  # what search returns: base columns, metrics.*, params.*, tags.*; newest first
    table: object  # pyarrow.Table: row number, attributes, and c0..cN for (kind, key, agg)
    names: dict  # (kind, key, agg) -> generated column name in ``table``

    def column(self, operand: Operand) -> str:
        if operand.kind == "attributes":
            return _ATTRIBUTE_COLUMNS[operand.key]
        agg = operand.agg if operand.kind == "metrics" else None
        return self.names.get((operand.kind, operand.key, agg), _NULL[operand.kind])


_lock = threading.Lock()


def run_index(store) -> RunIndex:
    """The store's run index, rebuilt when the newest audit event changed."""
    version = store.scalar("select coalesce(max(seq), 0) from audit_events")
    with _lock:
        cached = getattr(store, "_run_index", None)
        if cached is not None and cached.version == version:
            return cached
        idx = _build(store, version)
        store._run_index = idx
        return idx


def _build(store, version: int) -> RunIndex:
    with store.connection() as conn:
        raw = conn.connection.dbapi_connection
        try:
            runs = frame(raw, "select r.run_id, e.name as experiment, r.name as run_name, r.status, r.user_name, "
                              "r.start_time, r.end_time, r.parent_run_id, r.git_commit, r.experiment_id "
                              "from runs r join experiments e on e.id = r.experiment_id "
                              "order by r.start_time desc, r.run_id")
            longs = {
                "metrics": frame(raw, "select run_id, key, value, min_value, max_value from latest_metrics"),
                "params": frame(raw, "select run_id, key, value from params"),
                "tags": frame(raw, "select run_id, key, value from tags"),
            }
        finally:
            if conn.in_transaction():
                conn.commit()
    out = runs.drop("experiment_id")
    filt = runs.select(list(_ATTRIBUTE_COLUMNS.values()))
    names: dict = {}
    for kind, long in longs.items():
        if long.is_empty():
            continue
        aggs = {"value": None, "min_value": "min", "max_value": "max"} if kind == "metrics" else {"value": None}
        for col, agg in aggs.items():
            wide = long.pivot(on="key", index="run_id", values=col, aggregate_function=None)
            keys = sorted(c for c in wide.columns if c != "run_id")
            gen = {}
            for k in keys:
                gen[k] = names[(kind, k, agg)] = f"c{len(names)}"
            filt = filt.join(wide.select(["run_id", *keys]).rename(gen), on="run_id", how="left", maintain_order="left")
            if agg is None:
                out = out.join(wide.select(["run_id", *keys]).rename({k: f"{kind}.{k}" for k in keys}),
                               on="run_id", how="left", maintain_order="left")
    filt = filt.with_row_index("row_nr")
    return RunIndex(version, out, filt.to_arrow(), names)


def search_runs(store, filter: str = "", experiment_id: int | None = None, max_results: int | None = None) -> pl.DataFrame:
    idx = run_index(store)
    compiled = compile_filter(filter or "", columns=idx.column)
    where, params = compiled.where, list(compiled.params)
    if experiment_id is not None:
        where = f"({where}) and experiment_id = ?"
        params.append(experiment_id)
    if where == "TRUE":
        rows = None
    else:
        with store.connection() as conn:
            raw = conn.connection.dbapi_connection
            raw.register("run_index", idx.table)
            try:
                rows = raw.execute(f"select row_nr from run_index where {where} order by row_nr", params).fetchnumpy()["row_nr"]
            finally:
                raw.unregister("run_index")
                if conn.in_transaction():
                    conn.commit()
    result = idx.runs if rows is None else idx.runs[rows]
    return result.head(max_results) if max_results else result
