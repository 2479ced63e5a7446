"""Prediction logs, late labels, per-window monitoring, policies and alerts."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import workbench as wb
from workbench import artifacts, monitoring

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


def test_alert_runs_the_retraining_command_and_records_it(ws, op, store_path, version, tmp_path):
    op.add_user("lee", "lead")
    lee = wb.connect(store_path, user="lee")
    marker = tmp_path / "retrained.txt"
    script = f"import os, pathlib; pathlib.Path({str(marker)!r}).write_text(os.environ['WORKBENCH_ALERT_ID']); print('retraining')"
    lee.set_monitor_policy("scorer", max_error_rate=0.01, retrain_command=[sys.executable, "-c", script])
    rng = np.random.default_rng(2)
    ws.log_predictions(version, _day(rng, 0, 200, error_share=0.3).drop("truth"))
    report = ws.monitor(version, window="1d")
    alert = report.alerts.row(0, named=True)
    assert alert["metric"] == "error_rate" and alert["exit_code"] == 0 and "retraining" in alert["output"]
    assert marker.read_text() == str(alert["id"])
    actions = lee.audit_events().filter(pl.col("action").is_in(["monitor_policy.set", "alert.raise", "alert.command"]))
    assert sorted(actions["action"].to_list()) == ["alert.command", "alert.raise", "monitor_policy.set"]
    with pytest.raises(wb.PermissionDenied):
        ws.set_monitor_policy("scorer", max_error_rate=0.5)  # a data scientist may not loosen it


def test_a_failing_or_missing_command_is_recorded_not_raised(ws, op, store_path, version):
    op.add_user("lee", "lead")
    lee = wb.connect(store_path, user="lee")
    lee.set_monitor_policy("scorer", max_error_rate=0.0, retrain_command=["no-such-retrainer", "--now"])
    ws.log_predictions(version, _day(np.random.default_rng(3), 0, 50, error_share=0.5).drop("truth"))
    alert = ws.monitor(version).alerts.row(0, named=True)
    assert alert["exit_code"] is None and "command not found: no-such-retrainer" in alert["output"]


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
    with pytest.raises(wb.ValidationError, match="must be a number"):
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
