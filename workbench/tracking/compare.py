"""Compare runs: the data behind the Compare runs page, for 1 to 50 runs.

The page shows what differs between candidate runs: params side by side, latest metrics
side by side, the best run per metric, overlaid metric curves, parallel coordinates and a
scatter of any two columns. Each operation here (``ws.params_table``, ``ws.metrics_table``,
``ws.best_runs``, ``ws.metric_curves``, ``ws.comparison_frame``, ``ws.run_labels``) takes run
ids, reads the store with bound parameters only, and returns a polars frame; the charts that
draw them are in :mod:`workbench.ui.compare_charts`.

Metric curves are *downsampled in the database* (DuckDB or PostgreSQL): a run may log millions of points, and a
browser draws a few thousand per chart smoothly. Each (run, key) series longer than
``max_points`` is cut into ``(max_points - 2) // 2`` equal step ranges, and each range
keeps only its points with the lowest and the highest value (M4-like: peaks and dips
survive, unlike striding or averaging), plus the series' first and last point. So no
series returns more than ``max_points`` points, and shorter series return unchanged.
Only the kept points leave the database.

Column names are what people see: a run's column is its name, with the first 8
characters of its id added when two compared runs share a name.

Example::

    ids = ws.search_runs("metrics.auc > 0.8", max_results=5)["run_id"].to_list()
    ws.params_table(ids).filter(pl.col("differs"))
    ws.best_runs(ids, goals={"latency_ms": "min"})
    compare_charts.curves_figure(ws.metric_curves(ids, keys=["val_loss"]))  # workbench.ui

Whether lower or higher is better is read from the metric name unless given:

>>> metric_goal("val_loss"), metric_goal("test/RMSE"), metric_goal("auc")
('min', 'min', 'max')
>>> metric_goal("latency_ms", goals={"latency_ms": "min"})
'min'
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

import polars as pl

from ..errors import NotFoundError, ValidationError
from ..operations import READ, operation
from ..people.context import Ctx

#: At most this many runs are compared at once (the page asks for at least two).
MAX_COMPARE = 50
#: Default and recommended cap on the points returned per (run, metric key) series.
MAX_POINTS = 1000
#: Parallel coordinates get unreadable beyond about a dozen axes.
MAX_DIMENSIONS = 12
#: A text param with more distinct values than this is not drawn as a categorical axis.
MAX_CATEGORIES = 20

#: Name parts that mean "lower is better" (``val_loss``, ``test/rmse``, ``error_rate`` ...).
MIN_TOKENS = frozenset({"loss", "logloss", "log_loss", "error", "err", "mae", "mse", "rmse", "rmsle", "msle",
                        "mape", "smape", "brier", "perplexity", "wer", "cer"})
_TOKEN = re.compile(r"[^a-z0-9]+")
_RESERVED = ("key", "differs")  # the tables' own column names


# -- runs and labels -----------------------------------------------------------------------
def _check_run_ids(run_ids: Iterable[str]) -> list[str]:
    if isinstance(run_ids, str) or run_ids is None:
        raise ValidationError("Give the runs to compare as a list of run ids, not a single string.")
    try:
        ids = list(dict.fromkeys(run_ids))  # a run selected twice is compared once
    except TypeError:
        raise ValidationError("Give the runs to compare as a list of run ids.") from None
    for rid in ids:
        if not isinstance(rid, str) or not rid.strip():
            raise ValidationError(f"Run ids must be non-empty strings, got {rid!r:.60}.")
    if not ids:
        raise ValidationError("Select at least one run to compare.")
    if len(ids) > MAX_COMPARE:
        raise ValidationError(f"Compare at most {MAX_COMPARE} runs at a time; {len(ids)} were selected.")
    return ids


def labels(names: Sequence[str], run_ids: Sequence[str], reserved: Iterable[str] = ()) -> list[str]:
    """Unique display names: the run name, plus a short id when names collide."""
    taken = set(reserved)
    shared = {n for n, c in Counter(names).items() if c > 1}
    out = []
    for name, rid in zip(names, run_ids):
        candidates = ([name] if name not in shared else []) + [f"{name} ({rid[:8]})", f"{name} ({rid})"]
        label = next((c for c in candidates if c not in taken), None)
        i = 2
        while label is None:  # only when run names mimic other runs' labels
            label = f"{name} ({rid}) #{i}" if f"{name} ({rid}) #{i}" not in taken else None
            i += 1
        taken.add(label)
        out.append(label)
    return out


def _runs(ctx: Ctx, run_ids: Iterable[str]) -> pl.DataFrame:
    """run_id, run_name, start_time and label of the runs, in the order given; checks they exist."""
    ids = _check_run_ids(run_ids)
    found = ctx.read("select run_id, name as run_name, start_time from runs "
                     "where run_id in (select unnest(?::varchar[]))", [ids])
    known = set(found["run_id"].to_list())
    missing = [r for r in ids if r not in known]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotFoundError(f"No run with id {shown}." if len(missing) == 1 else f"No runs with ids {shown}.")
    runs = pl.DataFrame({"run_id": ids}, schema={"run_id": pl.String}).join(
        found, on="run_id", how="left", maintain_order="left")
    return runs.with_columns(pl.Series("label", labels(runs["run_name"].to_list(), ids, _RESERVED)))


@operation(READ, writes=False)
def run_labels(ctx: Ctx, run_ids: Iterable[str]) -> dict[str, str]:
    """run id -> the column name the tables use for it (the name, made unique)."""
    runs = _runs(ctx, run_ids)
    return dict(zip(runs["run_id"].to_list(), runs["label"].to_list()))


def metric_goal(key: str, goals: Mapping[str, str] | None = None) -> str:
    """``"min"`` or ``"max"``: ``goals[key]`` if given, else guessed from the name.

    Names with a part such as loss, error, mae, mse, rmse, log_loss (see ``MIN_TOKENS``),
    or a part ending in "loss" or "error", are minimised; everything else is maximised.

    Raises
    ------
    ValidationError
        If ``goals[key]`` is neither ``"min"`` nor ``"max"`` (any case).
    """
    if goals and key in goals:
        goal = goals[key]
        if not isinstance(goal, str) or goal.lower() not in ("min", "max"):
            raise ValidationError(f"Goal for metric {key!r} must be 'min' or 'max', got {goal!r:.40}.")
        return goal.lower()
    low = key.lower()
    if any(t in MIN_TOKENS for t in (low, *_TOKEN.split(low))):
        return "min"
    return "min" if any(t.endswith(("loss", "error")) for t in _TOKEN.split(low)) else "max"


def _check_goals(goals) -> dict[str, str]:
    if goals is None:
        return {}
    if not isinstance(goals, Mapping):
        raise ValidationError("goals must be a mapping of metric key to 'min' or 'max'.")
    for key in goals:
        metric_goal(key, goals)  # raises for a bad value
    return dict(goals)


# -- metric curves -------------------------------------------------------------------------
# Buckets are equal step ranges of each series: b = floor((step - s0) * nb / (s1 - s0 + 1)),
# in [0, nb). A bucket keeps its min and its max point (NaN excluded; a bucket with only NaN
# keeps its first point, so the gap shows), the series keeps its first and last point:
# at most 2 * nb + 2 <= max_points points. ``sid`` numbers the series so the heavy
# aggregate groups by integers, not by two strings; its order (runs as given, then key) is
# the output's order. Among equal values (or points logged twice at the same step) which
# point is kept is unspecified: the chart looks the same.
_CURVES_SQL = """
with sel as not materialized (
  select run_id, key, step, value, ts from metrics
  where run_id in (select unnest($ids::varchar[]))
    and ($all_keys::boolean or key in (select unnest($keys::varchar[])))
),
stats as (
  select row_number() over (order by list_position($ids::varchar[], run_id), key) as sid, * from (
    select run_id, key, count(*) as n, min(step) as s0, max(step) as s1,
           arg_min(value, step) as v0, arg_max(value, step) as v1
    from sel group by run_id, key)
),
buckets as (
  select sid,
         arg_min(step, value) filter (where not isnan(value)) as smin,
         min(value) filter (where not isnan(value)) as vmin,
         arg_max(step, value) filter (where not isnan(value)) as smax,
         max(value) filter (where not isnan(value)) as vmax,
         min(step) as sfirst
  from (select t.sid, s.step, s.value,
               least(floor((s.step::double - t.s0::double) * $nb::double / (t.s1::double - t.s0::double + 1)),
                     $nb - 1) as b
        from sel s join (select * from stats where n > $max_points) t on t.run_id = s.run_id and t.key = s.key)
  group by sid, b
),
kept as (
  select t.sid, s.step, s.value, s.ts
  from sel s join (select * from stats where n <= $max_points) t on t.run_id = s.run_id and t.key = s.key
  union all
  select sid, step, value, null::timestamptz as ts from (
    select sid, s0 as step, v0 as value from stats where n > $max_points
    union select sid, s1, v1 from stats where n > $max_points
    union select sid, smin, vmin from buckets where smin is not null
    union select sid, smax, vmax from buckets where smax is not null
    union select sid, sfirst, 'nan'::double from buckets where smin is null)
)
select t.run_id, r.name as run_name, t.key, k.step, k.value
from kept k join stats t using (sid) join runs r on r.run_id = t.run_id
order by k.sid, k.step, k.ts nulls last
"""

# PostgreSQL has no arg_min/arg_max, and an ordered array_agg per group sorts every series
# (3.3 s for 1M points). There, min/max of a two-element array picks the extreme value and
# its step in one hash aggregate (the step rides along as float8: exact up to 2^53), and
# the work is three queries: the series' stats, then their buckets with the series passed as
# arrays, which PostgreSQL can run in parallel (a CTE would not be): 0.65 s for 1M points.
# NaN sorts above every number in PostgreSQL, so min/max skip it with a filter.
_PG_STATS = """
select run_id, key, count(*) as n, min(step) as s0, max(step) as s1,
       (min(array[step::float8, value]))[2] as v0, (max(array[step::float8, value]))[2] as v1
from metrics where run_id = any($ids::text[]) and ($all_keys::boolean or key = any($keys::text[]))
group by run_id, key order by array_position($ids::text[], run_id), key
"""
_PG_BUCKETS = """
select sid, (min(array[value, step::float8]) filter (where value <> 'NaN'::float8))[2]::int8 as lo_step,
       (min(array[value, step::float8]) filter (where value <> 'NaN'::float8))[1] as lo,
       (max(array[value, step::float8]) filter (where value <> 'NaN'::float8))[2]::int8 as hi_step,
       (max(array[value, step::float8]) filter (where value <> 'NaN'::float8))[1] as hi, min(step) as sfirst
from (select t.sid, m.step, m.value, least(floor((m.step - t.s0)::float8 * $nb / (t.s1 - t.s0 + 1)), $nb - 1) as b
      from metrics m join unnest($runs::text[], $keys::text[], $sids::int8[], $s0::int8[], $s1::int8[])
           as t(run_id, key, sid, s0, s1) on t.run_id = m.run_id and t.key = m.key) x
group by sid, b
"""
_PG_WHOLE = """
select t.sid, m.step, m.value, m.ts
from metrics m join unnest($runs::text[], $keys::text[], $sids::int8[]) as t(run_id, key, sid)
     on t.run_id = m.run_id and t.key = m.key
"""


def _curves_pg(ctx: Ctx, runs: pl.DataFrame, key_list: list[str] | None, max_points: int) -> pl.DataFrame:
    """The same points as ``_CURVES_SQL``, computed on PostgreSQL (see above)."""
    ids = runs["run_id"].to_list()
    stats = ctx.read(_PG_STATS, {"ids": ids, "all_keys": key_list is None, "keys": key_list or []})
    stats = stats.with_row_index("sid").with_columns(pl.col("sid").cast(pl.Int64))
    big, small = stats.filter(pl.col("n") > max_points), stats.filter(pl.col("n") <= max_points)
    parts = [pl.DataFrame(schema={"sid": pl.Int64, "step": pl.Int64, "value": pl.Float64,
                                  "ts": pl.Datetime("us", "UTC")})]
    if small.height:
        whole = ctx.read(_PG_WHOLE, {"runs": small["run_id"].to_list(), "keys": small["key"].to_list(),
                                     "sids": small["sid"].to_list()})
        parts.append(whole.select("sid", "step", "value", "ts"))
    if big.height:
        b = ctx.read(_PG_BUCKETS, {"nb": (max_points - 2) // 2, "runs": big["run_id"].to_list(),
                                   "keys": big["key"].to_list(), "sids": big["sid"].to_list(),
                                   "s0": big["s0"].to_list(), "s1": big["s1"].to_list()})
        kept = pl.concat([
            big.select("sid", step="s0", value="v0"), big.select("sid", step="s1", value="v1"),
            b.filter(pl.col("lo").is_not_null()).select("sid", step="lo_step", value="lo"),
            b.filter(pl.col("hi").is_not_null()).select("sid", step="hi_step", value="hi"),
            b.filter(pl.col("lo").is_null()).select("sid", step="sfirst", value=pl.lit(float("nan"))),
        ], how="vertical_relaxed").unique(maintain_order=True)  # SQL's union: each kept point once
        parts.append(kept.with_columns(ts=pl.lit(None, pl.Datetime("us", "UTC"))))
    points = pl.concat([p.cast({"sid": pl.Int64, "step": pl.Int64, "value": pl.Float64,
                                "ts": pl.Datetime("us", "UTC")}) for p in parts])
    return (points.join(stats.select("sid", "run_id", "key"), on="sid")
            .join(runs.select("run_id", "run_name"), on="run_id")
            .sort(["sid", "step", "ts"], nulls_last=True))


_CURVES_SCHEMA = {"run_id": pl.String, "run_name": pl.String, "key": pl.String, "step": pl.Int64, "value": pl.Float64}


@operation(READ, writes=False)
def metric_curves(ctx: Ctx, run_ids: Iterable[str], keys: Iterable[str] | None = None,
                  max_points: int = MAX_POINTS) -> pl.DataFrame:
    """Metric points of the runs (all keys, or ``keys``), at most ``max_points`` per series.

    Columns run_id, run_name, key, step, value; ordered by the runs as given, then key,
    then step. Series of at most ``max_points`` points come back whole, exactly as logged
    (NaN included). Longer ones are downsampled in the database (see the module docstring):
    NaN points never stand for a bucket's min or max; a bucket holding only NaN keeps one
    NaN point, so the chart shows a gap there, and a NaN first or last point is kept.
    """
    runs = _runs(ctx, run_ids)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 4:
        raise ValidationError(f"max_points must be an integer of at least 4, got {max_points!r}.")
    if isinstance(keys, str):
        keys = [keys]
    key_list = None if keys is None else [str(k) for k in keys]
    if key_list is not None and not key_list:
        return pl.DataFrame(schema=_CURVES_SCHEMA)
    if ctx.store.is_postgres:
        points = _curves_pg(ctx, runs, key_list, max_points)
    else:
        points = ctx.read(_CURVES_SQL, {
            "ids": runs["run_id"].to_list(), "all_keys": key_list is None, "keys": key_list,
            "nb": (max_points - 2) // 2, "max_points": max_points})
    return points.select(list(_CURVES_SCHEMA)).cast(_CURVES_SCHEMA)


# -- side-by-side tables -------------------------------------------------------------------
def _side_by_side(long: pl.DataFrame, runs: pl.DataFrame, dtype) -> pl.DataFrame:
    """key, one column per run (its label), differs: from long rows (run_id, key, value)."""
    ids, labels = runs["run_id"].to_list(), runs["label"].to_list()
    if long.is_empty():
        return pl.DataFrame({"key": pl.Series([], dtype=pl.String),
                             **{lab: pl.Series([], dtype=dtype) for lab in labels},
                             "differs": pl.Series([], dtype=pl.Boolean)})
    # Columns are named _0, _1 ... while computing (pl.col() reads "^...$" as a regex),
    # and get their labels (user text) by rename at the end.
    cols = [f"_{i}" for i in range(len(ids))]
    long = long.with_columns(pl.col("run_id").replace_strict(dict(zip(ids, cols)), return_dtype=pl.String))
    wide = long.pivot(on="run_id", index="key", values="value", aggregate_function=None)
    wide = wide.with_columns([pl.lit(None, dtype=dtype).alias(c) for c in cols if c not in wide.columns])
    values = pl.concat_list([pl.col(c).cast(dtype) for c in cols])
    wide = wide.select(
        "key", *[pl.col(c).cast(dtype) for c in cols],
        # Missing somewhere, or more than one distinct value (NaN equals NaN here).
        differs=(values.list.n_unique() > 1) | pl.any_horizontal([pl.col(c).is_null() for c in cols]),
    ).sort("key")
    return wide.rename(dict(zip(cols, labels)))


@operation(READ, writes=False)
def params_table(ctx: Ctx, run_ids: Iterable[str]) -> pl.DataFrame:
    """One row per param key, one text column per run (named by its label), and ``differs``.

    ``differs`` is True when the runs' values are not all equal as text, or when a run
    lacks the param. Rows are sorted by key; columns follow the order of ``run_ids``.
    """
    runs = _runs(ctx, run_ids)
    long = ctx.read("select run_id, key, value from params where run_id in (select unnest(?::varchar[]))",
                    [runs["run_id"].to_list()])
    return _side_by_side(long, runs, pl.String)


@operation(READ, writes=False)
def metrics_table(ctx: Ctx, run_ids: Iterable[str]) -> pl.DataFrame:
    """One row per metric key, each run's latest value (highest step) in its column, and ``differs``."""
    runs = _runs(ctx, run_ids)
    return _side_by_side(_latest(ctx, runs), runs, pl.Float64)


def _latest(ctx: Ctx, runs: pl.DataFrame) -> pl.DataFrame:
    return ctx.read("select run_id, key, value from latest_metrics where run_id in (select unnest(?::varchar[]))",
                    [runs["run_id"].to_list()])


@operation(READ, writes=False)
def best_runs(ctx: Ctx, run_ids: Iterable[str], goals: Mapping[str, str] | None = None) -> pl.DataFrame:
    """For each metric key: the run with the best latest value.

    Columns key, goal ("min"/"max", from ``goals`` or guessed by :func:`metric_goal`),
    run_id, run_name, label, value, n_runs (runs with a usable value). NaN and missing
    values never win; a key where no run has a usable value keeps its row with nulls.
    Ties go to the run that started first (then the lower run id).
    """
    goals = _check_goals(goals)
    runs = _runs(ctx, run_ids)
    latest = _latest(ctx, runs)
    schema = {"key": pl.String, "goal": pl.String, "run_id": pl.String, "run_name": pl.String,
              "label": pl.String, "value": pl.Float64, "n_runs": pl.UInt32}
    if latest.is_empty():
        return pl.DataFrame(schema=schema)
    keys = latest["key"].unique().to_list()
    goal_of = {k: metric_goal(k, goals) for k in keys}
    scored = (latest.join(runs.select("run_id", "run_name", "label", "start_time"), on="run_id")
              .with_columns(goal=pl.col("key").replace_strict(goal_of, return_dtype=pl.String))
              .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
              .with_columns(score=pl.when(pl.col("goal") == "max").then(pl.col("value")).otherwise(-pl.col("value"))))
    best = (scored.sort(["key", "score", "start_time", "run_id"], descending=[False, True, False, False])
            .group_by("key", maintain_order=True)
            .agg(pl.col("run_id", "run_name", "label", "value").first(), n_runs=pl.len()))
    every = pl.DataFrame({"key": sorted(keys)}).with_columns(
        goal=pl.col("key").replace_strict(goal_of, return_dtype=pl.String))
    return (every.join(best, on="key", how="left", maintain_order="left")
            .with_columns(pl.col("n_runs").fill_null(0))
            .select(list(schema)).cast(schema))


@operation(READ, writes=False)
def comparison_frame(ctx: Ctx, run_ids: Iterable[str]) -> pl.DataFrame:
    """One row per run: run_id, run_name, ``params.<key>`` columns, ``metrics.<key>`` columns.

    A param column is Float64 when every value the runs logged parses as a number (a run
    without it has null), else it stays text. Metrics are the latest values. The input of
    :func:`~workbench.ui.compare_charts.parallel_coordinates` and
    :func:`~workbench.ui.compare_charts.scatter_figure`.
    """
    runs = _runs(ctx, run_ids)
    ids = runs["run_id"].to_list()
    out = runs.select("run_id", "run_name")
    params = ctx.read("select run_id, 'params.' || key as key, value from params "
                      "where run_id in (select unnest(?::varchar[]))", [ids])
    metrics = ctx.read("select run_id, 'metrics.' || key as key, value from latest_metrics "
                       "where run_id in (select unnest(?::varchar[]))", [ids])
    for long in (params, metrics):
        if long.is_empty():
            continue
        wide = long.pivot(on="key", index="run_id", values="value", aggregate_function=None)
        cols = sorted(c for c in wide.columns if c != "run_id")
        wide = wide.select([wide.get_column("run_id"), *[wide.get_column(c) for c in cols]])
        out = out.join(wide, on="run_id", how="left", maintain_order="left")
    converted = []
    for name in out.columns:
        col = out.get_column(name)
        if name.startswith("params.") and col.dtype == pl.String:
            num = col.cast(pl.Float64, strict=False)
            if num.null_count() == col.null_count():
                col = num
        converted.append(col)
    return pl.DataFrame(converted)


__all__ = ["MAX_COMPARE", "MAX_POINTS", "metric_curves", "params_table", "metrics_table", "best_runs",
           "comparison_frame", "metric_goal", "run_labels", "labels"]
