"""The same scenarios on a file workspace and through a server, with the same results.

The ``team`` fixture is parametrised as the backends are: ``file`` connects to the store
directly, ``remote`` starts the real server on it and connects each user with their token.
Each scenario asserts the same outcomes on both sides; the ones that only a server can show
(what a client may not make it do) are at the end.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _server import serving
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import workbench as wb
from workbench.datasets import fingerprint
from workbench.demo.datasets import FEATURES_NUMERIC, TARGET, make_credit_applicants
from workbench.store import shared
from workbench.workspace import operator_workspace

USERS = {"dana": "data_scientist", "lee": "lead", "rita": "reviewer", "ada": "admin"}
FEATURES = [*FEATURES_NUMERIC, "postcode_area"]


@pytest.fixture(params=[pytest.param("file", marks=pytest.mark.file_side), "remote"])
def team(request, store_path, tmp_path):
    """``connect(name)``: a workspace of that user, on the store file or through a server holding it."""
    op = operator_workspace(store_path)
    for name, role in USERS.items():
        op.add_user(name, role)
    if request.param == "file":
        yield lambda name: wb.connect(store_path, user=name)
        return
    tokens = {name: op.create_token(f"{name}'s", user=name)["token"] for name in USERS}
    shared.close(store_path)  # the server holds the store from here on
    with serving(store_path, tmp_path / "serve.log") as (url, _):
        team_ = lambda name: wb.connect(url, token=tokens[name])  # noqa: E731
        team_.url, team_.tokens = url, tokens
        yield team_


def _credit_model(dana, train: pl.DataFrame, name: str, tier: str):
    model = Pipeline([
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["postcode_area"]),
                                    ("num", StandardScaler(), FEATURES_NUMERIC)])),
        ("model", LogisticRegression(max_iter=500)),
    ]).fit(train.select(FEATURES).to_pandas(), train[TARGET].to_numpy())
    with dana.start_run("both-sides") as run:
        run.log_dataset(train, "applicants", role="train")
        mv = run.register_model(model, name, risk_tier=tier)
    return mv, model


def test_evidence_is_computed_where_the_data_is_and_judged_by_the_stores_policy(team):
    dana = team("dana")
    train = make_credit_applicants(1_500, seed=3)
    test = make_credit_applicants(600, seed=4)
    mv, model = _credit_model(dana, train, "credit", "high")

    X = test.select(["applicant_id", *FEATURES])
    exp = dana.explain(mv, X, row_id="applicant_id", max_rows=200)
    assert exp.additivity["passed"] and exp.evidence_id > 0
    summary, table = dana.evidence_detail(exp.evidence_id)
    assert summary["inputs"] == {"X": fingerprint(X)[0]}
    # the row ids (identifying) are the store's tokens, never the applicant ids
    assert table.height == 200 and not set(table["row_id"]) & set(test["applicant_id"])
    assert {"value:income", "income"} <= set(table.columns)
    assert exp.global_importance["feature"].to_list()[0] in FEATURES

    # decisions that approve women half as often as men: judged by the high tier's policy, where the store is
    women = (test["sex"] == "female").to_numpy()
    y_pred = np.where(women, np.arange(600) % 2, np.arange(600) % 10 == 0).astype(int)
    fair = dana.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["sex"], y_pred=y_pred,
                         favorable_label=0, n_bootstrap=50)
    assert fair.verdict == "fail" and any("four-fifths" in r for r in fair.reasons), fair.reasons
    stored = dana.evidence_summary(fair.evidence_id)
    assert stored["verdict"] == fair.verdict and stored["reasons"] == fair.reasons
    assert set(stored["inputs"]) == {"X", "y_true", "y_pred"}
    assert dana.evidence_policy(fair.evidence_id) == fair.policy

    later = make_credit_applicants(600, month="2026-03", drifted=True, seed=5)
    drift = dana.drift(test.select(FEATURES), later.select(FEATURES), model_version=mv)
    assert drift.verdict == "fail" and "drifted" in drift.reasons[0]
    assert dana.evidence_summary(drift.evidence_id)["verdict"] == "fail"
    assert dana.drift(test.select(FEATURES), test.select(FEATURES)).drift_share == 0.0  # not stored

    # Evidently's HTML shows identifying values as the store's tokens, here and through the server
    with_ids = test.select(["applicant_id", "income"])
    theirs = dana.drift(with_ids.head(300), with_ids.tail(300), engine="evidently", model_version=mv)
    assert theirs.html and not any(a in theirs.html for a in test["applicant_id"].head(300).to_list()[:20])

    latest = dana.evidence("credit")
    assert sorted(latest["kind"].to_list()) == ["drift", "explanation", "fairness"]
    assert set(latest["created_by"]) == {"dana"}

    # a reviewer may read the evidence but not make it; a verdict sent with a summary is not kept
    rita = team("rita")
    with pytest.raises(wb.PermissionDenied, match="compute evidence"):
        rita.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["sex"])
    forged = dict(stored, verdict="pass", reasons=[])
    again = dana.record_fairness("credit", 1, forged, fair.by_group)
    assert again["verdict"] == fair.verdict and dana.evidence_summary(again["evidence_id"])["verdict"] == fair.verdict
    with pytest.raises(wb.ValidationError, match="global_importance"):
        dana.record_explanation("credit", 1, {"explainer": "made up"}, table)


def test_prediction_logs_and_the_monitor_give_the_same_windows_and_alerts(team):
    dana, lee = team("dana"), team("lee")
    train = make_credit_applicants(1_200, seed=6)
    mv, model = _credit_model(dana, train, "watched", "medium")
    assert dana.log_reference(mv, train.select(FEATURES)) > 0
    rng = np.random.default_rng(9)
    start = pl.datetime(2026, 3, 2, time_zone="UTC")
    labels = []
    for week in range(3):
        batch = make_credit_applicants(300, month="2026-03", drifted=week == 2, seed=20 + week)
        frame = batch.select(FEATURES).with_columns(
            pl.Series("timestamp", pl.select(start + pl.duration(days=7 * week, seconds=pl.int_range(0, 300) * 600))
                      .to_series()),
            pl.Series("request_id", [f"r-{week}-{i}" for i in range(300)]),
            pl.Series("prediction", model.predict_proba(batch.select(FEATURES).to_pandas())[:, 1]),
            pl.Series("latency_ms", rng.gamma(2.0, 8.0, 300)))
        logged = dana.log_predictions(mv, frame.to_pandas() if week == 0 else frame)  # pandas too
        assert logged["rows"] == 300 and isinstance(logged["request_ids"], pl.Series)
        assert not set(logged["request_ids"]) & set(frame["request_id"])  # tokens, not the ids
        labels.append(frame.select("request_id").with_columns(batch[TARGET].alias("label")))
    got = dana.log_labels(mv, pl.concat(labels + [pl.DataFrame({"request_id": ["never"], "label": [1]})]))
    assert (got["rows"], got["matched"], got["unknown"]) == (901, 900, 1)

    lee.set_monitor_policy("watched", max_drift_share=0.2, min_auc=0.99)
    with pytest.raises(wb.PermissionDenied):
        team("rita").monitor(mv, window="1w")
    watch = dana.monitor(mv, window="1w")
    assert watch.windows["rows"].to_list() == [300, 300, 300]
    assert watch.windows["labelled"].to_list() == [300, 300, 300]
    assert watch.task == "classification" and watch.reference
    assert set(watch.alerts["metric"]) >= {"auc"}  # 0.99 is out of reach
    assert lee.alerts("watched").height == watch.alerts.height
    quiet = team("rita").monitor(mv, window="1w", alerts=False)  # a reviewer may look without recording
    assert quiet.windows.equals(watch.windows)


def test_runs_search_and_comparison_read_the_same(team):
    dana = team("dana")
    ids = []
    for c in (0.1, 1.0, 10.0):
        with dana.start_run("sweep", name=f"C={c}", tags={"kind": "sweep"}) as run:
            run.log_params({"C": c, "penalty": "l2"})
            for step in range(5):
                run.log_metric("loss", 1 / (c * (step + 1)), step=step)
            run.log_metrics({"auc": 0.6 + c / 100})
        ids.append(run.run_id)
    found = dana.search_runs("params.C IN ('1.0', '10.0') AND metrics.auc > 0.6", experiment="sweep")
    assert sorted(found["run_name"]) == ["C=1.0", "C=10.0"]
    frame = dana.comparison_frame(ids)
    assert frame["params.C"].to_list() == [0.1, 1.0, 10.0] and frame["metrics.loss"][0] == pytest.approx(2.0)
    best = dana.best_runs(ids)
    assert dict(zip(best["key"], best["run_id"])) == {"auc": ids[2], "loss": ids[2]}
    table = dana.params_table(ids)
    assert dict(zip(table["key"], table["differs"])) == {"C": True, "penalty": False}
    curves = dana.metric_history(ids[0], "loss")
    assert curves["step"].to_list() == [0, 1, 2, 3, 4]
    with pytest.raises(wb.ValidationError, match="cannot change"):
        with dana.start_run("sweep") as run:
            run.log_params({"C": 1})
            run.log_params({"C": 2})
    assert dana.get_run(run.run_id)["status"] == "FAILED"  # the with block ended it so, on both sides
    with pytest.raises(wb.PermissionDenied, match="log runs"):
        team("rita").start_run("sweep").end()


def test_a_promotion_needs_four_eyes_and_is_audited_the_same(team):
    dana, lee, rita = team("dana"), team("lee"), team("rita")
    X = np.random.default_rng(1).normal(size=(200, 2))
    with dana.start_run("gov") as run:
        run.log_metrics({"roc_auc": 0.8})
        mv = run.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "gov", risk_tier="low")
    req = dana.request_promotion(mv, "Staging", "ready for a look")
    assert (req.status, req.requested_by) == ("pending", "dana")
    with pytest.raises(wb.PermissionDenied, match="own request"):
        dana.decide(req.id, True, "mine")
    with pytest.raises(wb.PermissionDenied):
        rita.decide(req.id, True, "a reviewer may not")
    rita.comment(req.id, "Looked at the curves: fine.")
    done = lee.decide(req.id, True, "checked")
    assert done.status == "approved" and [d["actor"] for d in done.decisions] == ["lee"]
    assert [c["text"] for c in done.comments] == ["Looked at the curves: fine."]
    assert dana.get_model_version("gov", 1).stage == "Staging"
    history = dana.stage_history("gov")
    assert history.select("to_stage", "actor", "request_id").row(-1) == ("Staging", "lee", req.id)
    trail = team("ada").audit_events()
    refused = trail.filter(pl.col("action") == "refused")
    assert sorted(refused["actor"]) == ["dana", "rita"]  # each refusal is in the trail, as its actor
    assert trail.filter(pl.col("action") == "request.approve")["actor"].to_list() == ["lee"]
    assert team("ada").verify_audit().ok


def _post(url: str, path: str, token: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"{url}/api/v1/ops/{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("team", ["remote"], indirect=True)
def test_a_client_cannot_make_the_server_unpickle_read_its_disk_or_compute_for_it(team):
    dana = team("dana")
    X = np.random.default_rng(0).normal(size=(100, 2))
    with dana.start_run("pickles") as run:
        run.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "p", format="pickle")
    token = team.tokens["dana"]
    asks = {
        "load on the server": ("load_model", {"name": "p"}),
        "unpickle for monitor": ("monitor", {"model_version": {"$tuple": ["p", 1]}, "allow_pickle": True}),
        "explain on the server": ("explain", {"model_version": {"$tuple": ["p", 1]}, "X": {}}),
        "a path of its disk": ("log_reference", {"model_version": {"$tuple": ["p", 1]},
                                                 "data": {"$path": "/etc/passwd"}}),
    }
    answers = {what: _post(team.url, op, token, body) for what, (op, body) in asks.items()}
    assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(asks, 400), answers
    assert "does not load models" in answers["load on the server"][1]["message"]
    assert "never unpickles" in answers["unpickle for monitor"][1]["message"]
    assert "computes where the data is" in answers["explain on the server"][1]["message"]
    assert "server's disk" in answers["a path of its disk"][1]["message"]
    # the remote workspace does all of these on the client's side
    assert dana.load_model("p", allow_pickle=True).predict(X).shape == (100,)


@pytest.mark.parametrize("team", ["remote"], indirect=True)
def test_a_schedule_names_a_folder_under_the_servers_reports_folder_only(team, tmp_path):
    lee = team("lee")
    X = np.random.default_rng(0).normal(size=(60, 2))
    with team("dana").start_run("cards") as run:
        run.register_model(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), "carded")
    for bad in ("/etc", "../../outside", "weekly/../../x"):
        with pytest.raises(wb.ValidationError, match="under its reports folder"):
            lee.add_schedule(f"s{len(bad)}", "0 6 * * 1", "model-card", "carded", "html", bad)
    lee.add_schedule("weekly card", "0 6 * * 1", "model-card", "carded", "html", "cards/weekly")
    (row,) = lee.schedules().to_dicts()
    # beside the artifact folder (the store file's folder, or $WORKBENCH_ARTIFACTS's on PostgreSQL)
    assert row["out_dir"] == str(tmp_path / "reports" / "cards" / "weekly")
    assert Path(row["out_dir"]).is_dir()
