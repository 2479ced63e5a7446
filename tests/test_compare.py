"""Compare runs: side-by-side tables, best runs, server-side downsampled curves, charts."""

from __future__ import annotations

import math
import statistics
import time

import plotly.graph_objects as go
import polars as pl
import pytest

import workbench as wb
from workbench.tracking import compare
from workbench.ui import compare_charts

NAN = float("nan")


def _run(ws, name, params=None, metrics=None, series=None, experiment="cmp"):
    """A finished run: ``params``, final ``metrics`` at step 0, ``series`` {key: [values by step]}."""
    with ws.start_run(experiment, name=name) as run:
        if params:
            run.log_params(params)
        if metrics:
            run.log_metrics(metrics, step=0)
        for key, values in (series or {}).items():
            for step, value in enumerate(values):
                run.log_metric(key, value, step=step)
    ws.flush()
    return run.run_id


def _bulk_points(ws, run_ids, keys, steps):
    """Many points fast: plain SQL on the raw connection (plus the matching latest rows)."""
    with ws.store.transaction() as conn:
        raw = conn.connection.dbapi_connection
        if ws.store.is_postgres:
            raw.execute(
                "insert into metrics select r.run_id, k.key, sin(s / 300.0 + length(k.key)) + random() * 0.1, s, now() "
                "from unnest(%s::text[]) r(run_id), unnest(%s::text[]) k(key), generate_series(0, %s - 1) s",
                [list(run_ids), list(keys), steps])
            raw.execute(
                "insert into latest_metrics select distinct on (run_id, key) run_id, key, value, step, ts, "
                "min(value) over w, max(value) over w, count(*) over w from metrics where run_id = any(%s) "
                "window w as (partition by run_id, key) order by run_id, key, step desc", [list(run_ids)])
            raw.execute("analyze metrics")  # what autovacuum does within a minute of a bulk load
            return
        raw.execute(
            "insert into metrics select r.run_id, k.key, sin(s.s / 300.0 + length(k.key)) + random() * 0.1, s.s, now() "
            "from (select unnest(?::varchar[]) as run_id) r, (select unnest(?::varchar[]) as key) k, range(?) s(s)",
            [list(run_ids), list(keys), steps])
        raw.execute(
            "insert into latest_metrics select run_id, key, arg_max(value, step), max(step), max(ts), min(value), "
            "max(value), count(*) from metrics where run_id in (select unnest(?::varchar[])) group by run_id, key",
            [list(run_ids)])


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


# -- side-by-side tables -------------------------------------------------------------------
def test_params_table_marks_differences_and_missing_values(ws):
    a = _run(ws, "alpha", {"model": "rf", "lr": 0.1, "depth": 5, "only_a": "x"})
    b = _run(ws, "beta", {"model": "rf", "lr": 0.01, "depth": 5})
    t = ws.params_table([a, b])
    assert t.columns == ["key", "alpha", "beta", "differs"]
    rows = {r["key"]: r for r in t.iter_rows(named=True)}
    assert list(rows) == ["depth", "lr", "model", "only_a"]  # sorted by key
    assert rows["model"] == {"key": "model", "alpha": "rf", "beta": "rf", "differs": False}
    assert rows["lr"]["differs"] and rows["lr"]["beta"] == "0.01"
    assert not rows["depth"]["differs"]
    assert rows["only_a"]["differs"] and rows["only_a"]["beta"] is None  # missing counts as a difference
    single = ws.params_table([a])
    assert single.columns == ["key", "alpha", "differs"] and not single["differs"].any()


def test_tables_disambiguate_shared_and_reserved_run_names(ws):
    a = _run(ws, "same", {"p": 1})
    b = _run(ws, "same", {"p": 1})
    c = _run(ws, "key", {"p": 2})
    t = ws.params_table([a, b, c])
    assert t.columns == ["key", f"same ({a[:8]})", f"same ({b[:8]})", f"key ({c[:8]})", "differs"]
    assert ws.run_labels([a, c]) == {a: "same", c: f"key ({c[:8]})"}
    empty = ws.params_table([_run(ws, "bare")])
    assert empty.columns == ["key", "bare", "differs"] and empty.is_empty()


def test_metrics_table_uses_latest_values(ws):
    a = _run(ws, "a", series={"loss": [0.9, 0.5, 0.3], "auc": [0.7, 0.8]})
    b = _run(ws, "b", series={"loss": [0.8, 0.3], "auc": [NAN]})
    c = _run(ws, "c", series={"loss": [0.3]})
    t = ws.metrics_table([a, b, c])
    rows = {r["key"]: r for r in t.iter_rows(named=True)}
    assert rows["loss"]["a"] == 0.3 and rows["loss"]["b"] == 0.3 and not rows["loss"]["differs"]
    assert rows["auc"]["a"] == 0.8 and math.isnan(rows["auc"]["b"]) and rows["auc"]["c"] is None
    assert rows["auc"]["differs"]
    assert t.schema["a"] == pl.Float64


# -- best runs -----------------------------------------------------------------------------
def test_best_runs_direction_nan_and_ties(ws):
    first = _run(ws, "first", metrics={"loss": 0.20, "auc": NAN, "val_error": 0.1, "tput": 1.0})
    second = _run(ws, "second", metrics={"loss": 0.10, "auc": 0.70, "val_error": 0.1, "tput": NAN})
    third = _run(ws, "third", metrics={"loss": NAN, "auc": 0.90, "val_error": 0.3, "tput": NAN})
    best = ws.best_runs([third, second, first])
    rows = {r["key"]: r for r in best.iter_rows(named=True)}
    assert list(rows) == ["auc", "loss", "tput", "val_error"]
    assert (rows["loss"]["goal"], rows["loss"]["run_name"], rows["loss"]["value"]) == ("min", "second", 0.10)
    assert (rows["auc"]["goal"], rows["auc"]["run_name"], rows["auc"]["value"]) == ("max", "third", 0.90)
    assert rows["loss"]["n_runs"] == 2  # the NaN loss is not a candidate
    assert rows["val_error"]["goal"] == "min" and rows["val_error"]["run_id"] == first  # tie: earlier start
    assert rows["tput"]["run_name"] == "first"  # NaN never wins, even over a low value
    custom = ws.best_runs([first, second, third], goals={"loss": "max", "auc": "MIN"})
    by_key = dict(zip(custom["key"], custom["run_name"]))
    assert by_key["loss"] == "first" and by_key["auc"] == "second"
    with pytest.raises(wb.ValidationError, match="'min' or 'max'"):
        ws.best_runs([first], goals={"loss": "lower"})


def test_best_runs_key_without_usable_value_keeps_a_row(ws):
    a = _run(ws, "a", metrics={"auc": NAN, "acc": 0.5})
    best = ws.best_runs([a])
    row = best.filter(pl.col("key") == "auc").row(0, named=True)
    assert row["run_id"] is None and row["value"] is None and row["n_runs"] == 0


def test_metric_goal_from_names():
    for key in ["loss", "val_loss", "train/loss", "log_loss", "logloss", "rmse", "test_MSE", "mae", "error_rate",
                "valLoss", "mean_absolute_error"]:
        assert compare.metric_goal(key) == "min", key
    for key in ["auc", "accuracy", "f1", "r2", "precision", "recall", "maestro"]:
        assert compare.metric_goal(key) == "max", key


# -- comparison frame ----------------------------------------------------------------------
def test_comparison_frame_casts_numeric_params(ws):
    a = _run(ws, "a", {"lr": 0.1, "model": "rf", "layers": 3}, metrics={"auc": 0.8})
    b = _run(ws, "b", {"lr": "1e-3", "model": "gbm"}, metrics={"auc": 0.7, "loss": 0.2})
    f = ws.comparison_frame([b, a])
    assert f["run_name"].to_list() == ["b", "a"]
    assert f.schema["params.lr"] == pl.Float64 and f["params.lr"].to_list() == [0.001, 0.1]
    assert f.schema["params.layers"] == pl.Float64 and f["params.layers"].to_list() == [None, 3.0]
    assert f.schema["params.model"] == pl.String
    assert f["metrics.loss"].to_list() == [0.2, None]
    assert f.columns == ["run_id", "run_name", "params.layers", "params.lr", "params.model", "metrics.auc", "metrics.loss"]


# -- validation ----------------------------------------------------------------------------
def test_unknown_and_too_many_runs(ws):
    a = _run(ws, "a", metrics={"auc": 0.5})
    with pytest.raises(wb.NotFoundError, match="nope"):
        ws.metric_curves([a, "nope"])
    with pytest.raises(wb.NotFoundError, match="'x1', 'x2'"):
        ws.params_table(["x1", a, "x2"])
    with pytest.raises(wb.ValidationError, match="at most 50"):
        ws.metric_curves([f"r{i}" for i in range(51)])
    with pytest.raises(wb.ValidationError, match="at least one"):
        ws.best_runs([])
    with pytest.raises(wb.ValidationError, match="list of run ids"):
        ws.metrics_table(a)
    with pytest.raises(wb.ValidationError, match="max_points"):
        ws.metric_curves([a], max_points=3)
    assert ws.metric_curves([a, a]).height == 1  # repeated ids count once


# -- metric curves -------------------------------------------------------------------------
def test_long_series_is_downsampled_keeping_extremes_and_ends(ws):
    n = 20_000
    values = [math.sin(s / 500) + 0.001 * ((s * 7919) % 13) for s in range(n)]
    values[777], values[12_345] = -50.0, 80.0  # a single-point dip and spike
    values[3_000:3_400] = [NAN] * 400  # a stretch of NaN
    values[5] = NAN
    long_id = _run(ws, "long", series={"loss": values, "auc": [0.5, NAN, 0.7]})
    short_id = _run(ws, "short", series={"loss": [0.9, 0.4, NAN, 0.5]})
    history = {rid: ws.metric_history(rid) for rid in (long_id, short_id)}

    curves = ws.metric_curves([long_id, short_id])
    assert curves.columns == ["run_id", "run_name", "key", "step", "value"]
    sizes = {(r, k): c for r, k, c in curves.group_by("run_id", "key").len().iter_rows()}
    assert sizes[(long_id, "loss")] <= compare.MAX_POINTS
    assert sizes[(long_id, "loss")] > 900  # ~2 points per bucket: the shape is kept
    long = curves.filter((pl.col("run_id") == long_id) & (pl.col("key") == "loss"))
    pts = dict(zip(long["step"], long["value"]))
    assert pts[777] == -50.0 and pts[12_345] == 80.0  # global min and max
    assert pts[0] == values[0] and pts[n - 1] == values[n - 1]  # first and last step
    assert long["step"].is_sorted()
    assert any(math.isnan(v) for s, v in pts.items() if 3_000 <= s < 3_400)  # the gap shows
    logged = dict(zip(history[long_id]["step"], history[long_id]["value"]))
    assert all(_same(v, logged[s]) for s, v in pts.items())  # only real points

    for rid, key in [(short_id, "loss"), (long_id, "auc")]:  # short series: unchanged, in step order
        got = curves.filter((pl.col("run_id") == rid) & (pl.col("key") == key))
        want = history[rid].filter(pl.col("key") == key)
        assert got["step"].to_list() == want["step"].to_list()
        assert all(_same(x, y) for x, y in zip(got["value"], want["value"]))
    assert curves["run_id"].unique(maintain_order=True).to_list() == [long_id, short_id]
    assert set(curves.filter(pl.col("run_id") == short_id)["run_name"]) == {"short"}

    only = ws.metric_curves([long_id, short_id], keys=["auc"])
    assert only["key"].unique().to_list() == ["auc"] and only.height == 3
    assert ws.metric_curves([long_id], keys=[]).is_empty()


@pytest.mark.parametrize("max_points", [4, 5, 10, 101])
def test_downsampling_bound_holds_for_any_size(ws, max_points):
    lengths = [1, 3, 4, 5, 9, 10, 11, 150, 1_001]
    ids = [_run(ws, f"n{n}", series={"m": [((i * 37) % 11) - 5.0 for i in range(n)]}) for n in lengths]
    curves = ws.metric_curves(ids, max_points=max_points)
    for rid, n in zip(ids, lengths):
        got = curves.filter(pl.col("run_id") == rid)
        assert got.height == n if n <= max_points else 2 <= got.height <= max_points
        assert got["step"].to_list()[0] == 0 and got["step"].to_list()[-1] == n - 1
        assert got["value"].min() == min(((i * 37) % 11) - 5.0 for i in range(n))
        assert got["value"].max() == max(((i * 37) % 11) - 5.0 for i in range(n))


def test_all_nan_and_repeated_steps_do_not_break_downsampling(ws):
    with ws.start_run("cmp", name="odd") as run:
        for s in range(3_000):
            run.log_metric("nan", NAN, step=s)
            run.log_metric("same_step", float(s % 17), step=7)
    ws.flush()
    curves = ws.metric_curves([run.run_id], max_points=100)
    nan = curves.filter(pl.col("key") == "nan")
    assert 0 < nan.height <= 100 and nan["value"].is_nan().all()
    same = curves.filter(pl.col("key") == "same_step")
    assert 2 <= same.height <= 4 and set(same["step"]) == {7}
    assert same["value"].min() == 0.0 and same["value"].max() == 16.0


def test_downsampling_runs_in_sql_and_is_fast(ws, monkeypatch):
    ids = [_run(ws, f"r{i:02d}") for i in range(50)]
    _bulk_points(ws, ids, ["loss"], 20_000)  # 1M points, 50 series
    assert ws.store.scalar("select count(*) from metrics") == 1_000_000

    def refuse(*args, **kwargs):
        raise AssertionError("metric_curves must not fetch whole series")

    monkeypatch.setattr(ws, "metric_history", refuse)
    fetched = []
    real_read = ws.store.read  # every read of an operation ends here

    def spy(sql, params=None):
        out = real_read(sql, params)
        fetched.append(out.height)
        return out

    monkeypatch.setattr(ws.store, "read", spy)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        curves = ws.metric_curves(ids)
        times.append(time.perf_counter() - t0)
    assert max(fetched) <= 50 * compare.MAX_POINTS  # only kept points left DuckDB
    sizes = curves.group_by("run_id").len()["len"]
    assert sizes.len() == 50 and sizes.max() <= compare.MAX_POINTS
    assert statistics.median(times) < 1.0, times


# -- charts --------------------------------------------------------------------------------
def test_figures_build(ws):
    ids = [_run(ws, f"run{i}", {"lr": 10 ** -i, "model": ["rf", "gbm"][i % 2], "seed": 7},
                series={"loss": [1.0 / (i + s + 1) for s in range(5)], "auc": [0.5 + 0.1 * i]})
           for i in range(3)]
    frame = ws.comparison_frame(ids)
    pc = compare_charts.parallel_coordinates(frame)
    assert isinstance(pc, go.Figure) and isinstance(pc.data[0], go.Parcoords)
    labels = [d.label for d in pc.data[0].dimensions]
    assert labels == ["lr", "model", "loss", "auc"]  # params left, metrics right, constant seed left out
    assert pc.data[0].line.colorbar.title.text == "auc" and pc.layout.title.text
    assert list(pc.data[0].dimensions[1].ticktext) == ["gbm", "rf"]
    assert [d.label for d in compare_charts.parallel_coordinates(frame, color="metrics.loss").data[0].dimensions][-1] == "loss"
    with pytest.raises(wb.ValidationError):
        compare_charts.parallel_coordinates(frame, color="nope")

    curves = compare_charts.curves_figure(ws.metric_curves(ids))
    assert len(curves.data) == 6 and curves.layout.xaxis.title.text == "step" and curves.layout.title.text
    one = compare_charts.curves_figure(ws.metric_curves(ids, keys=["loss"]))
    assert len(one.data) == 3 and one.layout.yaxis.title.text == "loss"
    assert isinstance(compare_charts.curves_figure(ws.metric_curves(ids), webgl=True).data[0], go.Scattergl)

    sc = compare_charts.scatter_figure(frame, "params.lr", "metrics.auc")
    assert len(sc.data) == 1 and list(sc.data[0].x) == [1.0, 0.1, 0.01]
    assert sc.layout.xaxis.title.text == "params.lr" and sc.layout.yaxis.title.text == "metrics.auc"
    coloured = compare_charts.scatter_figure(frame.with_columns(pl.Series("metrics.auc", [0.5, None, 0.7])),
                                      "params.model", "metrics.loss", color="metrics.auc")
    assert list(coloured.data[0].x) == ["rf", "gbm", "rf"] and coloured.data[0].marker.showscale
    with pytest.raises(wb.ValidationError, match="No column"):
        compare_charts.scatter_figure(frame, "params.nope", "metrics.auc")


def test_parallel_coordinates_caps_dimensions():
    frame = pl.DataFrame({"run_id": ["a", "b", "c"], "run_name": ["a", "b", "c"],
                          **{f"params.p{i:02d}": [float(i), i + 1.0, i + 2.0] for i in range(15)},
                          **{f"metrics.m{i:02d}": [float(i), i * 2.0, NAN] for i in range(1, 10)}})
    dims = compare_charts.parallel_coordinates(frame).data[0].dimensions
    assert len(dims) == compare.MAX_DIMENSIONS
    assert [d.label for d in dims][:6] == [f"p{i:02d}" for i in range(6)] and dims[-1].label == "m01"
    assert all(v is None or math.isfinite(v) for d in dims for v in d["values"])
    assert len(compare_charts.parallel_coordinates(frame, max_dimensions=4).data[0].dimensions) == 4


def test_figures_escape_user_text_and_show_empty_states(ws):
    a = _run(ws, "<b>bold</b>", {"note": "<a href='x'>y</a>"}, metrics={"auc": 0.5})
    b = _run(ws, "<b>bold</b>", {"note": "plain"}, metrics={"auc": 0.6})
    curves = compare_charts.curves_figure(ws.metric_curves([a, b]))
    assert {t.name for t in curves.data} == {f"&lt;b&gt;bold&lt;/b&gt; ({a[:8]})", f"&lt;b&gt;bold&lt;/b&gt; ({b[:8]})"}
    frame = ws.comparison_frame([a, b])
    sc = compare_charts.scatter_figure(frame, "params.note", "metrics.auc")
    assert "<" not in "".join(sc.data[0].x) + "".join(sc.data[0].text)
    pc = compare_charts.parallel_coordinates(frame)
    # Parcoords draws tick text as plain text (checked in chromium), labels as markup.
    assert list(pc.data[0].dimensions[0].ticktext) == ["<a href='x'>y</a>", "plain"]
    coloured = compare_charts.parallel_coordinates(frame, color="params.note").data[0].line.colorbar
    assert list(coloured.ticktext) == ["&lt;a href='x'&gt;y&lt;/a&gt;", "plain"]

    empty = compare_charts.curves_figure(ws.metric_curves([a], keys=["nothing"]))
    assert len(empty.data) == 0 and "No metric points" in empty.layout.annotations[0].text
    bare = compare_charts.parallel_coordinates(ws.comparison_frame([_run(ws, "bare")]))
    assert len(bare.data) == 0 and bare.layout.annotations
