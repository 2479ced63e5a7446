"""Prediction logs, late labels, per-window monitoring, policies and alerts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _raw import raw_sql
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

import workbench as wb
from workbench.monitoring import windows as monitoring
from workbench.store import artifacts

REPO = Path(__file__).resolve().parent.parent

DAY0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def version(ws):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (2000, 3))
    y = (X[:, 0] + rng.normal(0, 1, 2000) > 0).astype(int)
    with ws.start_run("monitor") as run:
        mv = run.register_model(LogisticRegression().fit(X, y), "scorer", risk_tier="medium")
    ws.log_reference(mv, pl.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2]}))
    return mv


def _day(rng, day: int, n: int, shift: float = 0.0, error_share: float = 0.0) -> pl.DataFrame:
    x0 = rng.normal(shift, 1, n)
    score = 1 / (1 + np.exp(-x0))
    return pl.DataFrame({
        "timestamp": [DAY0 + timedelta(days=day, seconds=int(s)) for s in rng.uniform(0, 86_399, n)],
        "request_id": [f"d{day}-{i}" for i in range(n)],
        "x0": x0, "x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n),
        "prediction": score,
        "latency_ms": rng.gamma(2, 10, n),
        "error": rng.random(n) < error_share,
        "truth": (x0 + rng.normal(0, 1, n) > 0).astype(int),
    })


def test_windows_report_volume_latency_errors_performance_and_drift(ws, version):
    rng = np.random.default_rng(1)
    days = [_day(rng, d, 400) for d in range(3)] + [_day(rng, 3, 400, shift=1.0, error_share=0.2)]
    for frame in days:
        ws.log_predictions(version, frame.drop("truth"))
    # labels arrive later, for most requests, plus some for requests never logged
    labels = pl.concat(days).select("request_id", pl.col("truth").alias("label")).sample(fraction=0.8, seed=3)
    got = ws.log_labels(version, pl.concat([labels, pl.DataFrame({"request_id": ["ghost-1", "ghost-2"], "label": [1, 0]})]))
    assert (got["rows"], got["matched"], got["unknown"]) == (labels.height + 2, labels.height, 2)

    report = ws.monitor(version, window="1d")
    w = report.windows
    assert w["rows"].to_list() == [400] * 4 and w["window_start"][0] == DAY0
    assert w["labelled"].sum() == labels.height
    # the realized performance of day 3 equals sklearn's on the same labelled rows
    last = days[3].join(labels, on="request_id")
    row = w.row(3, named=True)
    y, hit = last["label"].to_numpy(), (last["prediction"] >= 0.5).to_numpy()
    assert row["accuracy"] == pytest.approx(accuracy_score(y, hit))
    assert row["precision"] == pytest.approx(precision_score(y, hit))
    assert row["recall"] == pytest.approx(recall_score(y, hit))
    assert row["f1"] == pytest.approx(f1_score(y, hit))
    assert row["auc"] == pytest.approx(roc_auc_score(last["label"], last["prediction"]))
    assert row["latency_p95_ms"] == pytest.approx(np.quantile(days[3]["latency_ms"].to_numpy(), 0.95))
    assert row["error_rate"] == pytest.approx(days[3]["error"].mean())
    # only the shifted day drifts; the default policy (drift share >= 0.5, error rate > 5 %) flags it
    assert [d >= 0.5 for d in w["drift_share"].to_list()] == [False, False, False, True]
    assert {b["metric"] for b in row["breaches"]} == {"error_rate", "drift_share"}
    assert report.breaching["window_start"].to_list() == [row["window_start"]]
    shifted = report.drift_by_window.filter(pl.col("window_start") == row["window_start"])
    assert shifted.filter(pl.col("column") == "x0")["drift_detected"].item() is True
    assert set(report.alerts["metric"]) == {"error_rate", "drift_share"}
    again = ws.monitor(version, window="1d")  # alerts are recorded once per window and metric
    assert again.alerts.height == 2


def _retrain_policy(op, store_path, marker):
    """A lead's policy whose command appends the alert id to ``marker`` and prints its environment."""
    op.add_user("lee", "lead")
    lee = wb.connect(store_path, user="lee")
    script = ("import os, pathlib, sys; p = pathlib.Path(sys.argv[1]); "
              "p.write_text(p.read_text() + os.environ['WORKBENCH_ALERT_ID'] + chr(10) if p.exists() "
              "else os.environ['WORKBENCH_ALERT_ID'] + chr(10)); print('retraining with', dict(os.environ))")
    lee.set_monitor_policy("scorer", max_error_rate=0.01, retrain_command=[sys.executable, "-c", script, str(marker)])
    return lee


def _child_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **extra}


def _everything_stored(store_path) -> str:
    """Every row of every table, and every artifact file, as one text to search."""
    from sqlmodel import SQLModel

    import workbench.store.schema  # noqa: F401 - the tables
    texts = [repr(raw_sql(store_path, f"select * from {t.name}")) for t in SQLModel.metadata.sorted_tables]
    folder = wb.connect(store_path, user="lee").store.artifact_root
    texts += [p.read_bytes().decode("latin-1") for p in Path(folder).rglob("*") if p.is_file()]
    return "\n".join(texts)


def test_a_retrain_command_runs_only_in_the_scheduler_with_the_configured_environment(ws, op, store_path, version,
                                                                                     tmp_path):
    """Issue 15 item 6: a data scientist's monitor() never runs the lead's command; her environment
    reaches neither the command nor the store; the scheduler runs it once in the configured
    environment; only leads and admins read its output."""
    marker = tmp_path / "retrained.txt"
    lee = _retrain_policy(op, store_path, marker)
    op.add_user("riley", "reviewer")
    ws.log_predictions(version, _day(np.random.default_rng(2), 0, 200, error_share=0.3).drop("truth"))
    ws.close()
    # her own process, with a secret in its environment
    dana_secret, scheduler_secret = "dana-secret-5f2c91", "scheduler-secret-a7e044"
    child = subprocess.run([sys.executable, "-c", (
        "import sys, workbench as wb; ws = wb.connect(sys.argv[1], user='dana'); "
        "print(ws.monitor(('scorer', 1), window='1d').alerts['metric'].to_list())"),
        str(store_path)], capture_output=True, text=True, timeout=120, env=_child_env(DANA_TOKEN=dana_secret))
    assert child.returncode == 0, child.stderr
    assert "'error_rate'" in child.stdout  # the alert was raised ...
    assert not marker.exists()  # ... and nothing ran in her process
    assert dana_secret not in _everything_stored(store_path)
    (alert,) = lee.alerts("scorer").to_dicts()
    assert (alert["command_status"], alert["exit_code"], alert["output"]) == ("pending", None, None)

    # the scheduler: its own secret stays out too; the command gets the configured variables
    env_file = tmp_path / "retrain.env"
    env_file.write_text("# for the retraining job\nRETRAIN_TOKEN=configured-7b1d\n\n")
    from _demo_store import cli_args, cli_env

    run = subprocess.run(cli_args("schedule", "run-due", "--store", store_path), capture_output=True, text=True,
                         timeout=120, env=cli_env(WORKBENCH_RETRAIN_ENV_FILE=str(env_file),
                                                  SCHEDULER_TOKEN=scheduler_secret))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"retrain alert {alert['id']} (scorer v1): ok (exit 0)"
    assert marker.read_text() == f"{alert['id']}\n"
    seen = lee.alerts("scorer").row(0, named=True)
    assert (seen["command_status"], seen["exit_code"]) == ("ok", 0)
    assert "retraining with" in seen["output"] and "'RETRAIN_TOKEN': 'configured-7b1d'" in seen["output"]
    assert f"'WORKBENCH_ALERT_ID': '{alert['id']}'" in seen["output"]
    assert scheduler_secret not in seen["output"] and dana_secret not in seen["output"]
    # her secret is nowhere in the store; the scheduler's neither
    everything = _everything_stored(store_path)
    assert "configured-7b1d" in everything  # the search does see the output
    assert dana_secret not in everything and scheduler_secret not in everything
    # run once: a second scheduler run finds nothing to do
    again = subprocess.run(cli_args("schedule", "run-due", "--store", store_path), capture_output=True, text=True,
                           timeout=120, env=cli_env(WORKBENCH_RETRAIN_ENV_FILE=str(env_file)))
    assert again.stdout.strip() == "Nothing due." and marker.read_text() == f"{alert['id']}\n"

    # the output: leads and admins only, in the service read and in the audit trail reviewers see
    riley, dana = wb.connect(store_path, user="riley"), wb.connect(store_path, user="dana")
    for other in (riley, dana):
        row = other.alerts("scorer").row(0, named=True)
        assert (row["command_status"], row["exit_code"], row["output"]) == ("ok", 0, None)
    op.add_user("ada", "admin")
    assert "configured-7b1d" in wb.connect(store_path, user="ada").alerts("scorer")["output"][0]
    trail = riley.audit_events()
    assert "configured-7b1d" not in "".join(trail["payload"].to_list())
    ran = trail.filter(pl.col("action") == "alert.command")
    assert ran.height == 1 and '"exit_code":0' in ran["payload"][0] and '"output_sha256"' in ran["payload"][0]
    assert trail.filter(pl.col("action") == "alert.command_start")["actor"].to_list() == [
        op.user]  # the scheduler's operator, not dana
    # and no user's process may run them
    for who in (lee, dana):
        with pytest.raises(wb.PermissionDenied, match="may not run commands"):
            who.run_pending_commands()


def test_a_failing_or_missing_command_is_recorded_not_raised(ws, op, store_path, version, monkeypatch):
    op.add_user("lee", "lead")
    lee = wb.connect(store_path, user="lee")
    lee.set_monitor_policy("scorer", max_error_rate=0.0, retrain_command=["no-such-retrainer", "--now"])
    ws.log_predictions(version, _day(np.random.default_rng(3), 0, 50, error_share=0.5).drop("truth"))
    statuses = ws.monitor(version).alerts["command_status"].to_list()
    assert statuses.count("pending") == 1 and set(statuses) <= {"pending", None}  # one command per check
    monkeypatch.delenv("WORKBENCH_RETRAIN_ENV_FILE", raising=False)
    (outcome,) = op.run_pending_commands()
    assert (outcome["status"], outcome["exit_code"]) == ("failed", None)
    alert = lee.alerts("scorer").filter(pl.col("id") == outcome["alert_id"]).row(0, named=True)
    assert alert["command_status"] == "failed" and "command not found: no-such-retrainer" in alert["output"]
    assert op.run_pending_commands() == []  # a failure is recorded, not retried


def test_a_broken_environment_file_runs_nothing_and_says_which_line(ws, op, store_path, version, tmp_path,
                                                                    monkeypatch):
    marker = tmp_path / "retrained.txt"
    _retrain_policy(op, store_path, marker)
    ws.log_predictions(version, _day(np.random.default_rng(7), 0, 100, error_share=0.3).drop("truth"))
    ws.monitor(version)
    env_file = tmp_path / "retrain.env"
    env_file.write_text("OK=1\nthis line holds secret-value-9 and no key\n")
    monkeypatch.setenv("WORKBENCH_RETRAIN_ENV_FILE", str(env_file))
    with pytest.raises(wb.ValidationError, match="line 2 is not KEY=VALUE") as refused:
        op.run_pending_commands()
    assert "secret-value-9" not in str(refused.value)
    monkeypatch.setenv("WORKBENCH_RETRAIN_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(wb.ValidationError, match="cannot be read"):
        op.run_pending_commands()
    assert not marker.exists() and ws.alerts("scorer")["command_status"].drop_nulls().to_list() == ["pending"]
    env_file.write_text("OK=1\n")
    monkeypatch.setenv("WORKBENCH_RETRAIN_ENV_FILE", str(env_file))
    assert [o["status"] for o in op.run_pending_commands()] == ["ok"] and marker.exists()


def test_two_schedulers_at_once_run_a_pending_command_once(ws, op, store_path, version, tmp_path):
    from _demo_store import cli_args, cli_env

    marker = tmp_path / "retrained.txt"
    _retrain_policy(op, store_path, marker)
    ws.log_predictions(version, _day(np.random.default_rng(8), 0, 100, error_share=0.3).drop("truth"))
    (alert_id,) = ws.monitor(version).alerts.filter(pl.col("command_status") == "pending")["id"].to_list()
    ws.close()
    procs = [subprocess.Popen(cli_args("schedule", "run-due", "--store", store_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cli_env()) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert marker.read_text() == f"{alert_id}\n", outs
    said = [o[0].strip() for o in outs]
    ran = f"retrain alert {alert_id} (scorer v1): ok (exit 0)"
    assert said.count(ran) == 1, said  # exactly one scheduler ran it; the other found it taken or gone
    assert [s for s in said if s != ran][0] in ("Nothing due.", f"retrain alert {alert_id} (scorer v1): skipped"), said


def test_a_command_left_running_by_a_dead_scheduler_is_failed_not_rerun(ws, op, store_path, version, tmp_path):
    marker = tmp_path / "retrained.txt"
    _retrain_policy(op, store_path, marker)
    ws.log_predictions(version, _day(np.random.default_rng(9), 0, 100, error_share=0.3).drop("truth"))
    (alert_id,) = ws.monitor(version).alerts.filter(pl.col("command_status") == "pending")["id"].to_list()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runner = f"{socket.gethostname()}:{dead.stdout.strip()}"
    ws.close()
    op.store.release()
    raw_sql(store_path, "update alerts set command_status = 'running', command_runner = ? where id = ?",
            [runner, alert_id])
    (outcome,) = op.run_pending_commands()
    assert outcome["status"] == "failed" and runner in outcome["error"]
    assert not marker.exists()
    row = wb.connect(store_path, user="lee").alerts("scorer").filter(pl.col("id") == alert_id).row(0, named=True)
    assert row["command_status"] == "failed" and "abandoned" in row["output"]
    assert op.run_pending_commands() == []


def test_setting_one_threshold_keeps_the_others_and_audits_before_and_after(ws, op, store_path, version):
    """Issue 15 item 7: an update changes only what it names."""
    op.add_user("lee", "lead")
    lee = wb.connect(store_path, user="lee")
    lee.set_monitor_policy("scorer", max_drift_share=0.3, min_auc=0.65, max_error_rate=0.02, max_latency_p95_ms=80.0,
                           retrain_command=["python", "retrain.py"])
    lee.set_monitor_policy("scorer", min_rows=100)
    policy = ws.monitor_policy("scorer")
    assert policy["thresholds"] == {**monitoring.DEFAULT_THRESHOLDS, "max_drift_share": 0.3, "min_auc": 0.65,
                                    "max_error_rate": 0.02, "max_latency_p95_ms": 80.0, "min_rows": 100}
    assert policy["retrain_command"] == ["python", "retrain.py"] and policy["default"] is False
    # the audit event shows the policy before and after, and what changed
    last = lee.audit_events().filter(pl.col("action") == "monitor_policy.set").sort("seq")["payload"][-1]
    change = json.loads(last)
    assert change["changed"] == ["min_rows"]
    assert change["before"]["thresholds"]["min_rows"] is None and change["after"]["thresholds"]["min_rows"] == 100
    assert change["before"]["thresholds"]["min_auc"] == change["after"]["thresholds"]["min_auc"] == 0.65
    # None turns one check off and keeps the rest; retrain_command=None removes the command
    lee.set_monitor_policy("scorer", min_auc=None, retrain_command=None)
    policy = ws.monitor_policy("scorer")
    assert policy["thresholds"]["min_auc"] is None and policy["thresholds"]["max_drift_share"] == 0.3
    assert policy["retrain_command"] is None and policy["thresholds"]["min_rows"] == 100
    # the windows are judged by the merged policy
    ws.log_predictions(version, _day(np.random.default_rng(10), 0, 50).drop("truth"))
    report = ws.monitor(version, alerts=False)
    assert report.thresholds["min_rows"] == 100 and report.thresholds["max_drift_share"] == 0.3
    assert "rows" in {b["metric"] for b in report.windows["breaches"][0]}
    # refusals change nothing
    before = ws.monitor_policy("scorer")
    for bad, message in (({"max_drift_share": 5}, "between 0 and 1"), ({"min_rows": -1}, "finite number >= 0"),
                         ({"max_error_rate": float("inf")}, "finite number"), ({}, "Name what to change")):
        with pytest.raises(wb.ValidationError, match=message):
            lee.set_monitor_policy("scorer", **bad)
    with pytest.raises(wb.ValidationError, match="non-empty list of strings"):
        lee.set_monitor_policy("scorer", retrain_command="python retrain.py")
    assert ws.monitor_policy("scorer") == before


def test_regression_windows_give_rmse_and_mae(ws):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (300, 2))
    with ws.start_run("reg") as run:
        mv = run.register_model(Ridge().fit(X, X[:, 0] * 2), "reg")
    frame = pl.DataFrame({"timestamp": [DAY0 + timedelta(hours=h) for h in range(48)], "a": rng.normal(0, 1, 48),
                          "prediction": np.arange(48, dtype=float), "label": np.arange(48, dtype=float) + 1.0})
    ws.log_predictions(mv, frame, label="label")
    report = ws.monitor(mv, window="1d", alerts=False)
    assert report.task == "regression" and not report.reference
    assert report.windows["mae"].to_list() == [1.0, 1.0] and report.windows["rmse"].to_list() == [1.0, 1.0]
    assert "no reference data set" in report.notes[0]


# -- bad input -----------------------------------------------------------------------------------
def test_bad_prediction_logs_are_refused_with_the_reason(ws, version):
    ok = _day(np.random.default_rng(5), 0, 10).drop("truth")
    with pytest.raises(wb.ValidationError, match="not times, e.g. 'yesterday'"):
        ws.log_predictions(version, ok.with_columns(pl.lit("yesterday").alias("timestamp")))
    with pytest.raises(wb.ValidationError, match=r"lack column\(s\) \['prediction'\]"):
        ws.log_predictions(version, ok.drop("prediction"))
    with pytest.raises(wb.ValidationError, match="own request id"):
        ws.log_predictions(version, ok.with_columns(pl.lit("same").alias("request_id")))
    with pytest.raises(wb.ValidationError, match="empty"):
        ws.log_predictions(version, ok.clear())
    with pytest.raises(wb.ValidationError, match="must be numeric"):
        ws.log_predictions(version, ok.with_columns(pl.lit("yes").alias("prediction")))
    with pytest.raises(wb.ValidationError, match="window must look like"):
        ws.monitor(version, window="daily")
    with pytest.raises(wb.ValidationError, match="no logged predictions"):
        ws.monitor(version)
    ws.log_predictions(version, ok.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%z")))  # ISO text is fine
    with pytest.raises(wb.ValidationError, match="No predictions in that time range"):
        ws.monitor(version, start="2030-01-01", end="2030-02-01")
    with pytest.raises(wb.ValidationError, match="not after start"):
        ws.monitor(version, start="2026-03-02", end="2026-03-01")
    with pytest.raises(wb.ValidationError, match="missing or infinite labels"):
        ws.log_labels(version, pl.DataFrame({"request_id": ["a"], "label": [None]}, schema={"request_id": pl.String, "label": pl.Float64}))
    with pytest.raises(wb.ValidationError, match="Unknown monitor threshold"):
        monitoring.check_thresholds({"max_latency": 1})
    with pytest.raises(wb.ValidationError, match="must be a finite number"):
        monitoring.check_thresholds({"max_error_rate": "high"})
    assert ws.monitor(version, alerts=False).windows.height == 1  # nothing bad was kept


def test_a_changed_log_file_is_refused(ws, version):
    got = ws.log_predictions(version, _day(np.random.default_rng(6), 0, 20).drop("truth"))
    digest = ws.store.scalar("select sha256 from prediction_batches where id = ?", [got["batch_id"]])
    path = artifacts.path_for(ws.store.artifact_root, digest)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-4] + b"evil")
    with pytest.raises(wb.IntegrityError, match="does not match its recorded digest"):
        ws.monitor(version)


def test_window_bounds_with_and_without_a_zone_compare_as_utc():
    start, end = monitoring.window_bounds("2024-01-01T00:00:00+00:00", "2024-01-02")  # a zone, and none
    assert start == datetime(2024, 1, 1, tzinfo=timezone.utc) and end == datetime(2024, 1, 2, tzinfo=timezone.utc)
    start, end = monitoring.window_bounds(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))),
                                          datetime(2024, 1, 1))  # 23:00 UTC the day before, then midnight
    assert end - start == timedelta(hours=1) and start.tzinfo == timezone.utc
    with pytest.raises(wb.ValidationError, match="not after start"):
        monitoring.window_bounds("2024-01-02T00:00:00+01:00", "2024-01-01T23:00:00")
