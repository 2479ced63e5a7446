"""The notebook tracking API: runs, params, metrics, tags, data sets, artifacts."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench as wb


def _history(ws, run_id, key=None) -> list[tuple[str, int, float]]:
    df = ws.metric_history(run_id, key)
    return [(r["key"], r["step"], r["value"]) for r in df.iter_rows(named=True)]


# -- params, metrics, tags ---------------------------------------------------------------
def test_params_metrics_tags_round_trip(ws):
    with ws.start_run("exp", name="baseline") as run:
        run.log_params({"model": "rf", "n_estimators": 200, "lr": 0.5})
        run.log_metrics({"auc": 0.75, "loss": 2.5}, step=0)
        run.log_metrics({"auc": 0.875, "loss": 1.25}, step=1)
        run.set_tags({"team": "credit", "stage": "dev"})
        run.set_tags({"stage": "final"})  # tags may be overwritten

    info = ws.get_run(run.run_id)
    assert info["name"] == "baseline"
    assert info["experiment"] == "exp"
    assert info["status"] == "FINISHED"
    assert info["params"] == {"model": "rf", "n_estimators": "200", "lr": "0.5"}
    assert info["tags"] == {"team": "credit", "stage": "final"}
    assert info["metrics"] == {"auc": 0.875, "loss": 1.25}
    assert _history(ws, run.run_id) == [
        ("auc", 0, 0.75), ("auc", 1, 0.875), ("loss", 0, 2.5), ("loss", 1, 1.25)]
    assert _history(ws, run.run_id, "loss") == [("loss", 0, 2.5), ("loss", 1, 1.25)]
    assert ws.experiments()["name"].to_list() == ["exp"]


def test_metric_values_keep_double_precision(ws):
    values = {"auc": 0.8123456789012345, "third": 1 / 3, "lr": 0.1}
    with ws.start_run("exp") as run:
        run.log_metrics(values)
    assert ws.get_run(run.run_id)["metrics"] == values
    hist = ws.metric_history(run.run_id)
    assert dict(zip(hist["key"], hist["value"])) == values
    row = ws.search_runs().row(0, named=True)
    assert {k: row[f"metrics.{k}"] for k in values} == values


def test_metric_values_beyond_float32_range_are_kept_with_their_run(ws):
    values = {"tiny": 1e-300, "big": 1.5e300, "neg_big": -3e200}
    with ws.start_run("exp") as run:
        run.log_params({"model": "rf"})
        run.log_metrics(values)
    info = ws.get_run(run.run_id)  # a float32 column would refuse 1.5e300 and lose the whole run
    assert info["params"] == {"model": "rf"}
    assert info["metrics"] == values


def test_numpy_numbers_are_accepted_as_metrics(ws):
    with ws.start_run("exp") as run:
        run.log_metrics({"f64": np.float64(0.25), "f32": np.float32(0.5), "i64": np.int64(3)})
    assert ws.get_run(run.run_id)["metrics"] == {"f64": 0.25, "f32": 0.5, "i64": 3.0}


def test_default_steps_increment_per_key(ws):
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
        run.log_metrics({"a": 2.0, "b": 10.0})
        run.log_metrics({"a": 3.0})
        run.log_metrics({"c": 0.0}, step=10)
        run.log_metrics({"c": 1.0})
        run.log_metric("b", 11.0)
    assert _history(ws, run.run_id) == [
        ("a", 0, 1.0), ("a", 1, 2.0), ("a", 2, 3.0),
        ("b", 0, 10.0), ("b", 1, 11.0),
        ("c", 10, 0.0), ("c", 11, 1.0),
    ]


def test_step_must_be_an_integer(ws):
    with ws.start_run("exp") as run:
        for bad in ("1", 1.5, True):
            with pytest.raises(wb.ValidationError, match="step"):
                run.log_metrics({"a": 1.0}, step=bad)
        run.log_metrics({"a": 2.0}, step=0)
    assert _history(ws, run.run_id) == [("a", 0, 2.0)]


@pytest.mark.parametrize("bad", ["0.9", None, True, False, [1.0], {"v": 1}], ids=repr)
def test_non_numeric_metric_is_refused_and_nothing_of_the_call_stored(ws, bad):
    with ws.start_run("exp") as run:
        run.log_metrics({"kept": 0.5})
        with pytest.raises(wb.ValidationError) as err:
            run.log_metrics({"ok": 1.0, "bad_metric": bad, "after": 2.0})
        assert "'bad_metric'" in str(err.value)
        assert "number" in str(err.value)
        run.log_metrics({"ok": 3.0})  # default step still starts at 0: the refused call left no trace
    assert _history(ws, run.run_id) == [("kept", 0, 0.5), ("ok", 0, 3.0)]
    assert ws.get_run(run.run_id)["status"] == "FINISHED"


def test_nan_and_inf_are_stored_and_returned_as_such(ws):
    with ws.start_run("exp") as run:
        run.log_metrics({"nan": float("nan"), "pinf": float("inf"), "ninf": float("-inf"), "npnan": np.nan}, step=5)
        run.log_metrics({"pinf": 1.0}, step=0)  # an earlier step: latest stays inf
    metrics = ws.get_run(run.run_id)["metrics"]
    assert math.isnan(metrics["nan"]) and math.isnan(metrics["npnan"])
    assert metrics["pinf"] == math.inf
    assert metrics["ninf"] == -math.inf
    hist = ws.metric_history(run.run_id, "pinf")
    assert hist["value"].to_list() == [1.0, math.inf]
    row = ws.search_runs().row(0, named=True)
    assert math.isnan(row["metrics.nan"])
    assert row["metrics.pinf"] == math.inf and row["metrics.ninf"] == -math.inf


def test_param_logged_twice_with_another_value_is_refused_first_value_kept(ws):
    with ws.start_run("exp") as run:
        run.log_params({"lr": 0.1, "depth": 3})
        with pytest.raises(wb.ValidationError) as err:
            run.log_params({"extra": "x", "lr": 0.2})
        msg = str(err.value)
        assert "'lr'" in msg and "'0.1'" in msg and "'0.2'" in msg
        run.flush()  # also across a flush
        with pytest.raises(wb.ValidationError, match="'depth'"):
            run.log_params({"depth": 4})
    assert ws.get_run(run.run_id)["params"] == {"lr": "0.1", "depth": "3"}  # 'extra' of the refused call not stored


def test_same_param_value_twice_is_fine(ws):
    with ws.start_run("exp") as run:
        run.log_params({"lr": 0.1, "model": "rf"})
        run.log_params({"lr": 0.1})
        run.log_params({"lr": "0.1", "model": "rf", "new": 7})
    assert ws.get_run(run.run_id)["params"] == {"lr": "0.1", "model": "rf", "new": "7"}
    n = ws.store.scalar("select count(*) from params where run_id = ? and key = 'lr'", [run.run_id])
    assert n == 1


def test_run_that_raises_ends_failed_with_its_data_kept(ws):
    with pytest.raises(RuntimeError, match="boom"):
        with ws.start_run("exp") as run:
            run.log_params({"model": "rf"})
            run.log_metrics({"auc": 0.5}, step=0)
            run.log_metrics({"auc": 0.75}, step=1)
            run.set_tags({"phase": "train"})
            raise RuntimeError("boom")
    info = ws.get_run(run.run_id)
    assert info["status"] == "FAILED"
    assert "RuntimeError" in info["error"] and "boom" in info["error"]
    assert info["end_time"] is not None
    assert info["params"] == {"model": "rf"}
    assert info["tags"] == {"phase": "train"}
    assert info["metrics"] == {"auc": 0.75}
    assert _history(ws, run.run_id) == [("auc", 0, 0.5), ("auc", 1, 0.75)]
    failed = ws.search_runs("attributes.status = 'FAILED'")
    assert failed["run_id"].to_list() == [run.run_id]


def test_script_that_dies_inside_a_run_keeps_the_failed_run(ws, store_path, tmp_path):
    # The last batch is written by the exit hook, which must run before DuckDB's own.
    ws.close()
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""\
        import sys
        import workbench as wb
        ws = wb.connect(store=sys.argv[1], user="dana")
        with ws.start_run("exp", name="dies") as run:
            run.log_params({"model": "rf"})
            run.log_metrics({"auc": 0.5})
            raise RuntimeError("boom")
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    out = subprocess.run([sys.executable, str(script), str(store_path)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "RuntimeError: boom" in out.stderr
    assert "could not save" not in out.stderr, out.stderr
    runs = ws.search_runs("attributes.run_name = 'dies'")
    assert runs.select(["status", "params.model", "metrics.auc"]).rows() == [("FAILED", "rf", 0.5)]


def test_logging_after_the_run_ended_is_refused(ws, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    attempts = [
        lambda: run.log_metrics({"a": 2.0}),
        lambda: run.log_params({"p": 1}),
        lambda: run.set_tags({"t": 1}),
        lambda: run.log_artifact(f),
        lambda: run.log_dataset(pl.DataFrame({"x": [1]}), "d"),
        lambda: run.register_model({"w": 1}, "m"),
    ]
    for attempt in attempts:
        with pytest.raises(wb.ValidationError, match="ended"):
            attempt()
    info = ws.get_run(run.run_id)
    assert info["params"] == {} and info["tags"] == {} and info["metrics"] == {"a": 1.0}
    assert ws.run_artifacts(run.run_id).is_empty() and ws.run_datasets(run.run_id).is_empty()
    assert ws.models().is_empty()


def test_nested_runs_record_their_parent(ws):
    with ws.start_run("exp", name="sweep") as parent:
        with ws.start_run("exp", name="child-1", parent=parent) as c1:
            c1.log_metrics({"auc": 0.5})
        with ws.start_run("exp", name="child-2", parent=parent.run_id) as c2:
            c2.log_metrics({"auc": 0.75})
    assert ws.get_run(c1.run_id)["parent_run_id"] == parent.run_id
    assert ws.get_run(c2.run_id)["parent_run_id"] == parent.run_id
    assert ws.get_run(parent.run_id)["parent_run_id"] is None
    children = ws.search_runs(f"attributes.parent_run_id = '{parent.run_id}'")
    assert sorted(children["run_name"].to_list()) == ["child-1", "child-2"]
    with pytest.raises(wb.NotFoundError, match="no-such-run"):
        ws.start_run("exp", parent="no-such-run")


def test_workspace_reads_see_what_an_open_run_logged(ws):
    # Values wait in the run's buffer for a group commit; a read in the same process
    # must still see them, and a model may be registered against the run before it ends.
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with ws.start_run("exp", name="open") as run:
        run.log_params({"C": 1.0})
        run.log_metrics({"auc": 0.75})
        info = ws.get_run(run.run_id)
        assert (info["status"], info["params"], info["metrics"]) == ("RUNNING", {"C": "1.0"}, {"auc": 0.75})
        assert ws.search_runs("metrics.auc = 0.75")["run_id"].to_list() == [run.run_id]
        with ws.start_run("exp", name="child", parent=run.run_id) as child:
            pass
        mv = ws.register_model(model, "open-run-model", run_id=run.run_id)
    assert mv.run_id == run.run_id
    assert ws.get_run(child.run_id)["parent_run_id"] == run.run_id
    assert ws.get_run(run.run_id)["status"] == "FINISHED"


def test_unknown_run_is_a_clear_not_found_error(ws):
    for call in (ws.get_run, ws.metric_history):
        with pytest.raises(wb.NotFoundError, match="'0123abc'"):
            call("0123abc")


# -- who, when, where ----------------------------------------------------------------------
def test_run_records_user_times_and_source(ws):
    before = datetime.now(timezone.utc)
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    after = datetime.now(timezone.utc)
    info = ws.get_run(run.run_id)
    assert info["user_name"] == "dana"
    assert info["start_time"].tzinfo is not None and info["end_time"].tzinfo is not None
    assert before <= info["start_time"] <= info["end_time"] <= after
    assert info["source"] == __file__


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=t@example.com",
                          "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


_SCRIPT = textwrap.dedent("""\
    import sys
    import workbench as wb
    ws = wb.connect(store=sys.argv[1], user="dana")
    with ws.start_run("git-exp") as run:
        run.log_metrics({"x": 1.0})
    ws.close()
    print(run.run_id)
""")


def _run_script(script: Path, store: Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    out = subprocess.run([sys.executable, str(script), str(store)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_git_commit_of_the_calling_script_is_recorded(ws, store_path, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text(_SCRIPT)
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")

    plain = tmp_path / "plain"  # not a git repository
    plain.mkdir()
    (plain / "train.py").write_text(_SCRIPT)
    assert subprocess.run(["git", "-C", str(plain), "rev-parse", "HEAD"], capture_output=True).returncode != 0

    elsewhere = tmp_path / "cwd"  # the commit comes from the script's folder, not the cwd
    elsewhere.mkdir()
    ws.close()  # let the child processes open the store
    in_repo = _run_script(repo / "train.py", store_path, elsewhere)
    outside = _run_script(plain / "train.py", store_path, elsewhere)

    info = ws.get_run(in_repo)
    assert info["git_commit"] == head
    assert info["source"] == str(repo / "train.py")
    assert ws.get_run(outside)["git_commit"] is None
    found = ws.search_runs(f"attributes.git_commit = '{head}'")
    assert found["run_id"].to_list() == [in_repo]


# -- permissions and users -----------------------------------------------------------------
def test_reviewer_cannot_start_a_run(op, store_path):
    op.add_user("rita", "reviewer")
    rita = wb.connect(store=store_path, user="rita")
    with pytest.raises(wb.PermissionDenied, match="reviewer"):
        rita.start_run("exp")
    assert rita.search_runs().is_empty()
    assert rita.experiments().is_empty()


def test_connect_without_a_user_can_read_but_not_write(ws, store_path):
    with ws.start_run("exp") as run:
        run.log_metrics({"a": 1.0})
    anon = wb.connect(store=store_path)
    assert anon.user is None
    assert anon.search_runs()["run_id"].to_list() == [run.run_id]
    with pytest.raises(wb.PermissionDenied, match="WORKBENCH_USER"):
        anon.start_run("exp")
    with pytest.raises(wb.PermissionDenied):
        anon.register_model({"w": 1}, "m")
    assert ws.counts()["runs"] == 1 and ws.counts()["versions"] == 0


def test_user_defaults_to_workbench_user_env(ws, store_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_USER", "dana")
    w = wb.connect(store=store_path)
    assert (w.user, w.role) == ("dana", "data_scientist")
    with w.start_run("exp") as run:
        pass
    assert ws.get_run(run.run_id)["user_name"] == "dana"


def test_unknown_user_is_a_clear_not_found_error(op, store_path):
    with pytest.raises(wb.NotFoundError, match="'ghost'"):
        wb.connect(store=store_path, user="ghost")


# -- data sets -----------------------------------------------------------------------------
def _frames():
    pl_df = pl.DataFrame({"age": [25, 40, 61], "income": [1200.5, 3400.0, None], "city": ["Oslo", "Lima", "Pune"]})
    pd_df = pd.DataFrame({"age": [25, 40, 61], "income": [1200.5, 3400.0, np.nan], "city": ["Oslo", "Lima", "Pune"]},
                         index=[7, 8, 9])
    return pl_df, pd_df


def _same_content(kind: str) -> tuple[pl.DataFrame, object]:
    """(a frame built directly, the same content reached another way: other memory layout)."""
    pl_df, pd_df = _frames()
    no_nulls = pl.DataFrame({"age": [25, 40, 61], "income": [1200.5, 3400.0, 0.0], "city": ["Oslo", "Lima", "Pune"]})
    if kind == "pandas":
        return pl_df, pd_df
    if kind == "pandas-no-nulls":
        return no_nulls, pd_df.fillna(0.0)
    if kind == "polars-filled":  # fill_null leaves an all-valid validity bitmap behind
        return no_nulls, pl_df.with_columns(pl.col("income").fill_null(0.0))
    # polars, derived: a null made by when/then over a real value, after a slice
    wide = pl.DataFrame({"age": [1, 25, 40, 61], "income": [5.0, 1200.5, 3400.0, 9.9],
                         "city": ["x", "Oslo", "Lima", "Pune"]})
    return pl_df, wide.with_columns(
        pl.when(pl.col("age") == 61).then(None).otherwise(pl.col("income")).alias("income")).slice(1)


@pytest.mark.parametrize("kind", ["pandas", "pandas-no-nulls", "polars-filled", "polars-derived"])
def test_log_dataset_same_content_same_digest(ws, kind):
    pl_df, other = _same_content(kind)
    as_polars = other if isinstance(other, pl.DataFrame) else pl.from_pandas(other.reset_index(drop=True))
    assert_frame_equal(as_polars, pl_df)  # precondition: same names, dtypes and values
    with ws.start_run("exp") as run:
        a = run.log_dataset(pl_df, "applicants", role="train", source="s3://bucket/applicants.parquet")
        b = run.log_dataset(other, "applicants", role="test")
    assert isinstance(a, wb.DatasetRef)
    assert a.digest == b.digest and a.id == b.id
    assert len(a.digest) == 64 and a.n_rows == 3
    ds = ws.run_datasets(run.run_id)
    assert ds.height == 2 and sorted(ds["role"].to_list()) == ["test", "train"]
    row = ds.row(0, named=True)
    assert row["n_rows"] == 3 and row["n_cols"] == 3
    assert row["source"] == "s3://bucket/applicants.parquet"
    cols = row["columns_json"]
    for name in ("age", "income", "city"):
        assert name in cols


@pytest.mark.parametrize("change", ["value", "column name", "dtype", "row order", "extra row"])
def test_log_dataset_different_content_different_digest(ws, change):
    base, _ = _frames()
    other = {
        "value": base.with_columns(pl.Series("age", [25, 40, 62])),
        "column name": base.rename({"age": "age_years"}),
        "dtype": base.with_columns(pl.col("age").cast(pl.Float64)),
        "row order": base.reverse(),
        "extra row": pl.concat([base, base.head(1)]),
    }[change]
    with ws.start_run("exp") as run:
        a = run.log_dataset(base, "applicants")
        b = run.log_dataset(other, "applicants")
    assert a.digest != b.digest and a.id != b.id


def test_log_dataset_lineage_to_parents(ws):
    raw = pl.DataFrame({"x": list(range(10)), "y": [i % 2 for i in range(10)]})
    with ws.start_run("prep") as prep:
        raw_ref = prep.log_dataset(raw, "raw", role="source")
    with ws.start_run("train") as run:
        train = run.log_dataset(raw.head(7), "train", role="train", parents=[raw_ref])
        test = run.log_dataset(raw.tail(3), "test", role="test", parents=[raw_ref.id])
    ds = {r["name"]: r for r in ws.run_datasets(run.run_id).iter_rows(named=True)}
    assert ds["train"]["parent_ids"] == [raw_ref.id] and ds["test"]["parent_ids"] == [raw_ref.id]
    assert ds["train"]["n_rows"] == 7 and ds["test"]["n_rows"] == 3
    assert train.id != test.id != raw_ref.id
    with ws.start_run("train") as run2:
        with pytest.raises(wb.NotFoundError, match="999"):
            run2.log_dataset(raw, "again", parents=[999])
        run2.log_metrics({"a": 1.0})
    assert ws.run_datasets(run2.run_id).is_empty()
    assert ws.get_run(run2.run_id)["status"] == "FINISHED"


# -- artifacts -----------------------------------------------------------------------------
def _stored_files(ws) -> list[Path]:
    root = ws.store.artifact_root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_log_artifact_is_content_addressed(ws, tmp_path):
    f = tmp_path / "report.txt"
    f.write_bytes(b"confusion matrix\n" * 100)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    with ws.start_run("exp") as r1:
        assert r1.log_artifact(f) == digest
    with ws.start_run("exp") as r2:
        assert r2.log_artifact(f, name="copy.txt") == digest
    files = _stored_files(ws)
    assert files == [ws.store.artifact_root / digest[:2] / digest]
    assert files[0].read_bytes() == f.read_bytes()
    a1 = ws.run_artifacts(r1.run_id).row(0, named=True)
    assert (a1["name"], a1["sha256"], a1["size"]) == ("report.txt", digest, 1700)
    assert ws.run_artifacts(r2.run_id)["name"].to_list() == ["copy.txt"]


def test_log_artifact_refuses_bad_names_and_missing_files(ws, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("a")
    g = tmp_path / "b.txt"
    g.write_text("b")
    with ws.start_run("exp") as run:
        for bad in ("sub/a.txt", "..\\a.txt", "../a.txt", "..", "."):
            with pytest.raises(wb.ValidationError, match="separator|name"):
                run.log_artifact(f, name=bad)
        with pytest.raises(wb.NotFoundError, match="missing.txt"):
            run.log_artifact(tmp_path / "missing.txt")
        run.log_artifact(f, name="a.txt")
        run.log_artifact(f, name="a.txt")  # same content again: fine
        with pytest.raises(wb.ValidationError, match="'a.txt'"):
            run.log_artifact(g, name="a.txt")
    arts = ws.run_artifacts(run.run_id)
    assert arts["name"].to_list() == ["a.txt"]
    assert arts["sha256"].to_list() == [hashlib.sha256(b"a").hexdigest()]


def test_a_run_in_separate_calls_follows_the_same_rules(ws, op):
    from workbench.tracking.runs import new_run_id

    rid = new_run_id()
    ws.submit_run(rid, "calls", name="one-call", params={"C": 1}, metrics=[["loss", 0.5], ["loss", 0.25]],
                  tags={"t": "x"}, status="FINISHED")
    got = ws.get_run(rid)
    assert (got["status"], got["name"], got["params"], got["tags"]) == ("FINISHED", "one-call", {"C": "1"}, {"t": "x"})
    assert ws.metric_history(rid)["step"].to_list() == [0, 1]
    with pytest.raises(wb.ValidationError, match="exists already"):
        ws.submit_run(rid, "calls")
    with pytest.raises(wb.ValidationError, match="32 lower-case hex digits"):
        ws.submit_run("not-an-id", "calls")
    later = ws.create_run("calls", parent=rid)
    ws.log_batch(later, metrics=[["loss", 1.0, 5], ["loss", 2.0]])
    assert ws.metric_history(later)["step"].to_list() == [5, 6]  # one past the key's last step, across calls
    ws.log_batch(later, params={"C": 1})
    with pytest.raises(wb.ValidationError, match="cannot change"):
        ws.log_batch(later, params={"C": 2})
    ws.end_run(later, "FAILED", error="diverged")
    assert (ws.get_run(later)["status"], ws.get_run(later)["error"]) == ("FAILED", "diverged")
    with pytest.raises(wb.ValidationError, match="status must be"):
        ws.end_run(later, "DONE")
    op.add_user("lou", "lead")
    with pytest.raises(wb.PermissionDenied, match="another user's run"):
        wb.connect(ws.store.location, user="lou").log_batch(ws.create_run("calls"), params={"x": 1})
