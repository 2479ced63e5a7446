"""Run search end to end: the filter language through ``ws.search_runs`` on a real store."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import workbench as wb
from workbench.tracking import search


@pytest.fixture
def runs(ws) -> dict[str, str]:
    """Four runs in two experiments; metric values are exact in binary floating point."""
    ids = {}
    with ws.start_run("search-a", name="r1") as r:
        r.log_params({"model": "rf", "lr": 0.1})
        for value in (0.5, 0.875, 0.75, 0.625, 0.6875):  # steps 0..4: latest 0.6875, min 0.5, max 0.875
            r.log_metrics({"auc": value})
        r.set_tags({"team": "alpha"})
        ids["r1"] = r.run_id
    with ws.start_run("search-a", name="r2") as r:
        r.log_params({"model": "gbm", "lr": 0.01})
        r.log_metrics({"auc": 0.8125, "loss": 0.25})
        r.set_tags({"team": "beta"})
        ids["r2"] = r.run_id
    with pytest.raises(ValueError):
        with ws.start_run("search-b", name="r3") as r:
            ids["r3"] = r.run_id
            r.log_params({"model": "lr", "lr": 1})
            r.log_metrics({"auc": 0.75})
            r.log_metrics({"auc": 0.78125})
            raise ValueError("diverged")
    with ws.start_run("search-b", name="r4") as r:
        r.log_params({"model": "rf-deep"})
        r.set_tags({"team": "alpha"})
        ids["r4"] = r.run_id
    return ids


def _names(ws, filter: str = "", experiment: str | None = None) -> list[str]:
    df = ws.search_runs(filter, experiment=experiment)
    assert df.height == df["run_id"].n_unique() if df.height else True  # one row per run
    return sorted(df["run_name"].to_list()) if df.height else []


def test_empty_filter_returns_every_run_once_with_wide_columns(ws, runs):
    df = ws.search_runs()
    assert df.height == 4 and df["run_id"].n_unique() == 4
    assert df["run_name"].to_list() == ["r4", "r3", "r2", "r1"]  # newest first
    for col in ("run_id", "experiment", "run_name", "status", "user_name", "start_time", "end_time",
                "parent_run_id", "git_commit", "metrics.auc", "metrics.loss", "params.model", "params.lr", "tags.team"):
        assert col in df.columns
    rows = {r["run_name"]: r for r in df.iter_rows(named=True)}
    assert rows["r1"]["metrics.auc"] == 0.6875  # the latest value, not the max
    assert rows["r3"]["status"] == "FAILED" and rows["r1"]["status"] == "FINISHED"
    assert rows["r4"]["metrics.auc"] is None and rows["r4"]["tags.team"] == "alpha"
    assert rows["r2"]["params.lr"] == "0.01" and rows["r2"]["experiment"] == "search-a"
    assert {r["user_name"] for r in rows.values()} == {"dana"}


@pytest.mark.parametrize("filter, expected", [
    ("metrics.auc > 0.7", ["r2", "r3"]),                       # latest values: r1 ends at 0.6875
    ("metrics.auc = 0.6875", ["r1"]),
    ("metrics.auc >= 0.5 AND metrics.auc < 0.7", ["r1"]),
    ("max(metrics.auc) >= 0.875", ["r1"]),                     # r1 peaked at step 1
    ("min(metrics.auc) < 0.6", ["r1"]),
    ("min(metrics.auc) >= 0.75", ["r2", "r3"]),
    ("metrics.loss <= 0.25", ["r2"]),
    ("params.model = 'rf' OR params.model = 'gbm'", ["r1", "r2"]),
    ("NOT params.model = 'rf'", ["r2", "r3", "r4"]),
    ("params.model = 'rf' OR params.model = 'lr' AND metrics.auc > 0.8", ["r1"]),  # AND binds tighter
    ("(params.model = 'rf' OR params.model = 'lr') AND metrics.auc > 0.7", ["r3"]),
    ("NOT (params.model = 'rf' OR tags.team = 'beta')", ["r4"]),  # r3 has no tag: NULL, as documented
    ("NOT (params.model = 'rf' OR params.model = 'gbm')", ["r3", "r4"]),
    ("params.model LIKE 'rf%'", ["r1", "r4"]),
    ("params.model NOT LIKE 'rf%'", ["r2", "r3"]),
    ("params.model IN ('gbm', 'lr')", ["r2", "r3"]),
    ("params.model NOT IN ('gbm', 'lr')", ["r1", "r4"]),
    ("params.lr < 0.05", ["r2"]),                              # numeric comparison of a text param
    ("tags.team = 'alpha' AND metrics.auc IS NULL", ["r4"]),
    ("attributes.status = 'FAILED'", ["r3"]),
    ("attributes.status = 'FINISHED' AND tags.team = 'alpha'", ["r1", "r4"]),
    ("attributes.run_name IN ('r2', 'r4')", ["r2", "r4"]),
    ("attributes.experiment = 'search-b'", ["r3", "r4"]),
    ("attributes.user = 'dana'", ["r1", "r2", "r3", "r4"]),
    ("params.model = 'rf' and metrics.auc < 0.7", ["r1"]),    # keywords in any case
    ("params.model = 'nothing'", []),
])
def test_filter_language(ws, runs, filter, expected):
    assert _names(ws, filter) == expected


def test_latest_value_semantics_over_steps(ws):
    with ws.start_run("steps") as run:
        for step, value in enumerate((0.25, 0.5, 0.125, 0.75, 0.375)):
            run.log_metrics({"acc": value}, step=step)
    assert _names(ws, "metrics.acc = 0.375") == [run.name]
    assert _names(ws, "metrics.acc = 0.75") == []
    assert _names(ws, "max(metrics.acc) = 0.75") == [run.name]
    assert _names(ws, "min(metrics.acc) = 0.125") == [run.name]
    assert ws.search_runs()["metrics.acc"].to_list() == [0.375]


def test_equality_on_a_logged_decimal_value_matches(ws):
    with ws.start_run("exp") as run:
        run.log_metrics({"acc": 0.93, "f1": 0.1})
    assert _names(ws, "metrics.acc = 0.93") == [run.name]
    assert _names(ws, "metrics.f1 = 0.1 AND metrics.acc >= 0.93") == [run.name]


def test_experiment_argument_restricts_the_search(ws, runs):
    assert _names(ws, experiment="search-b") == ["r3", "r4"]
    assert _names(ws, "metrics.auc > 0.7", experiment="search-a") == ["r2"]
    assert _names(ws, "params.model = 'gbm'", experiment="search-b") == []


def test_unknown_experiment_is_not_found(ws, runs):
    with pytest.raises(wb.NotFoundError, match="'no-such-exp'"):
        ws.search_runs(experiment="no-such-exp")


@pytest.mark.parametrize("filter, position", [
    ("metrics.auc > AND params.x = 'a'", 14),
    ("params.model = 'rf", 15),
    ("metrics.auc ~ 1", 12),
    ("(metrics.auc > 1", 16),
    ("params.model IN 'rf'", 16),
])
def test_syntax_error_names_the_position(ws, runs, filter, position):
    with pytest.raises(wb.FilterSyntaxError) as err:
        ws.search_runs(filter)
    assert err.value.position == position
    assert f"position {position}" in str(err.value)
    assert filter in str(err.value)


def test_filter_mistakes_are_explained(ws, runs):
    with pytest.raises(wb.FilterSyntaxError, match="colour"):
        ws.search_runs("attributes.colour = 'red'")
    with pytest.raises(wb.FilterSyntaxError, match="metrics"):
        ws.search_runs("metric.auc = 'high'")
    with pytest.raises(wb.FilterSyntaxError):
        ws.search_runs("foo.bar = 1")


def test_filter_syntax_error_is_a_workbench_error(ws, runs):
    # errors.py: every error a user can cause derives from WorkbenchError, so the CLI and the
    # dashboard can show its message without a traceback
    with pytest.raises(wb.WorkbenchError):
        ws.search_runs("metrics.auc >")


def test_values_are_bound_not_pasted_into_sql(ws, runs):
    assert _names(ws, "params.model = 'rf'' OR ''1''=''1'") == []
    assert _names(ws, "params.`model'; drop table runs; --` = 'x'") == []
    with pytest.raises(wb.FilterSyntaxError, match="';'"):
        ws.search_runs("tags.team = 'alpha'; drop table runs")
    assert ws.counts()["runs"] == 4


def test_one_row_per_run_with_many_steps_params_and_tags(ws):
    for i in range(3):
        with ws.start_run("wide", name=f"w{i}") as run:
            run.log_params({f"p{j}": j for j in range(5)})
            run.set_tags({"a": "x", "b": "y"})
            for step in range(20):
                run.log_metrics({f"m{j}": step * 0.5 + j for j in range(4)}, step=step)
    df = ws.search_runs(experiment="wide")
    assert df.height == 3 and df["run_id"].n_unique() == 3
    assert df.filter(df["run_name"] == "w0").row(0, named=True)["metrics.m3"] == 19 * 0.5 + 3
    assert ws.search_runs("metrics.m0 = 9.5", max_results=2).height == 2


def test_latest_min_max_merge_across_flushes_of_one_run(ws):
    """A long run is flushed several times: the first flush inserts, later ones upsert."""
    with ws.start_run("merge") as run:
        run.log_metrics({"loss": 5.0}, step=0)
        run.log_metrics({"loss": float("nan")}, step=1)
        run.flush()
        run.log_metrics({"loss": 0.5}, step=3)
        run.log_metrics({"loss": 9.0}, step=2)  # an older step logged late: not the latest
        run.flush()
        run.log_metrics({"acc": 0.7})
    info = ws.get_run(run.run_id)
    assert info["metrics"] == {"loss": 0.5, "acc": 0.7}
    assert ws.search_runs("min(metrics.loss) = 0.5 AND max(metrics.loss) = 9.0", experiment="merge").height == 1
    assert ws.search_runs("metrics.loss > 1", experiment="merge").height == 0
    assert ws.metric_history(run.run_id, "loss")["step"].to_list() == [0, 1, 2, 3]


def _fresh_search(ws, text=""):
    """The same search on an index rebuilt from scratch."""
    with search.rebuilt_run_index(ws.store):
        return ws.search_runs(text)


@pytest.mark.parametrize("text", ["", "metrics.auc > 0.5", "params.model = 'rf' OR tags.stage = 'b'",
                                  "max(metrics.loss) > 2 AND NOT attributes.status = 'RUNNING'", "metrics.new_key IS NOT NULL"])
def test_refreshed_run_index_equals_a_rebuilt_one(ws, text):
    from polars.testing import assert_frame_equal

    rng = np.random.default_rng(3)
    for i in range(12):
        with ws.start_run("idx", name=f"r{i}") as run:
            run.log_params({"model": ["rf", "lr"][i % 2]})
            run.log_metrics({"auc": float(rng.random()), "loss": float(rng.random() * 3)})
            run.set_tags({"stage": "a"})
    ws.search_runs(text)  # builds the index
    long_run = ws.start_run("idx", name="long")  # starts before the next ones, ends after them
    long_run.log_metrics({"auc": 0.9})
    long_run.flush()
    assert_frame_equal(ws.search_runs(text), _fresh_search(ws, text))
    for i in range(3):
        with ws.start_run("idx", name=f"late{i}") as run:
            run.log_metrics({"new_key": float(i), "loss": 5.0})
            run.set_tags({"stage": "b"})
    long_run.set_tags({"stage": "b"})
    long_run.end()
    refreshed = ws.search_runs(text)
    assert_frame_equal(refreshed, _fresh_search(ws, text))
    if text == "":
        assert refreshed.height == 16 and refreshed["run_name"][0] == "late2"


AWKWARD_TEXT = ["", " ", "a,b", 'say "hi"', "two\nlines\r\n", "é ünïcödé", "\\N", "NULL", "'; --"]
AWKWARD_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e-300, 0.1 + 0.2, -0.0, 123456789.12345679]


def test_a_rebuilt_index_keeps_every_text_and_float_exactly(ws):
    """The full index is read with COPY as CSV on PostgreSQL: nothing may change on the way."""
    ids = []
    for i, text in enumerate(AWKWARD_TEXT):
        with ws.start_run("awkward", name=f"t{i}") as run:
            run.log_params({"p": text})
            run.set_tags({"t": text})
            run.log_metrics({"m": AWKWARD_FLOATS[i % len(AWKWARD_FLOATS)]})
        ids.append(run.run_id)
    fresh = _fresh_search(ws).filter(pl.col("experiment") == "awkward")
    by_id = {r["run_id"]: r for r in fresh.to_dicts()}
    for i, rid in enumerate(ids):
        row = by_id[rid]
        assert row["params.p"] == AWKWARD_TEXT[i] and row["tags.t"] == AWKWARD_TEXT[i], (i, row)
        want = AWKWARD_FLOATS[i % len(AWKWARD_FLOATS)]
        got = row["metrics.m"]
        assert (np.isnan(want) and np.isnan(got)) or (got == want and np.copysign(1, got) == np.copysign(1, want)), (i, got)
    assert fresh.height == len(AWKWARD_TEXT)
