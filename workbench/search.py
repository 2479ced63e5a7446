"""Run search: the filter language (see :mod:`workbench.filterlang`) over the store.

The filter is parsed into a tree and compiled to SQL with bound parameters, then the
matching runs are widened to one row per run with ``metrics.*``, ``params.*`` and
``tags.*`` columns.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from .filterlang import compile_filter
from .store.connection import frame

BASE_COLUMNS = ["run_id", "experiment", "run_name", "status", "user_name", "start_time", "end_time",
                "parent_run_id", "git_commit"]


def search_runs(store, filter: str = "", experiment_id: int | None = None, max_results: int | None = None) -> pl.DataFrame:
    compiled = compile_filter(filter or "")
    where = compiled.where
    params = list(compiled.params)
    if experiment_id is not None:
        where = f"({where}) and r.experiment_id = ?"
        params.append(experiment_id)
    limit = f" limit {int(max_results)}" if max_results else ""
    runs = store.read(
        "select r.run_id, e.name as experiment, r.name as run_name, r.status, r.user_name, r.start_time, "
        "r.end_time, r.parent_run_id, r.git_commit "
        f"from runs r join experiments e on e.id = r.experiment_id {compiled.joins} where {where} "
        f"order by r.start_time desc, r.run_id{limit}",
        params,
    )
    if runs.is_empty():
        return runs
    return widen(store, runs)


def widen(store, runs: pl.DataFrame) -> pl.DataFrame:
    """Add one column per metric (latest value), param and tag key to a frame of runs."""
    ids = pa.table({"run_id": runs["run_id"].to_arrow()})
    with store.connection() as conn:
        raw = conn.connection.dbapi_connection
        raw.register("sel_ids", ids)
        try:
            parts = {
                "metrics": frame(raw, "select m.run_id, m.key, m.value from latest_metrics m semi join sel_ids s on s.run_id = m.run_id"),
                "params": frame(raw, "select p.run_id, p.key, p.value from params p semi join sel_ids s on s.run_id = p.run_id"),
                "tags": frame(raw, "select t.run_id, t.key, t.value from tags t semi join sel_ids s on s.run_id = t.run_id"),
            }
        finally:
            raw.unregister("sel_ids")
            if conn.in_transaction():
                conn.commit()
    out = runs
    for kind, long in parts.items():
        if long.is_empty():
            continue
        wide = long.pivot(on="key", index="run_id", values="value", aggregate_function=None)
        keys = sorted(c for c in wide.columns if c != "run_id")
        wide = wide.select(["run_id", *keys]).rename({k: f"{kind}.{k}" for k in keys})
        out = out.join(wide, on="run_id", how="left")
    return out
