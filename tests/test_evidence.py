"""Evidence stored against model versions: fairness reports, verdicts, migration of old stores."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import workbench as wb
from workbench.demo.datasets import (
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    TARGET,
    make_credit_applicants,
)
from workbench.evidence.fairness import fairness_report
from workbench.protection import pseudonyms
from workbench.store import keys, schema, shared
from workbench.workspace import operator_workspace


@pytest.fixture
def credit_version(ws):
    data = make_credit_applicants(4000, seed=3)
    pre = ColumnTransformer([("num", StandardScaler(), FEATURES_NUMERIC),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), FEATURES_CATEGORICAL)])
    model = Pipeline([("prep", pre), ("model", LogisticRegression(max_iter=300))])
    model.fit(data.to_pandas()[FEATURES_NUMERIC + FEATURES_CATEGORICAL], data[TARGET].to_numpy())
    with ws.start_run("fair") as run:
        mv = run.register_model(model, "credit", risk_tier="high")
    return mv, model, make_credit_applicants(3000, seed=4)


def test_fairness_is_computed_judged_and_stored(ws, op, credit_version):
    mv, model, test = credit_version
    report = ws.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["sex", "age_band"], n_bootstrap=50)
    # the same numbers as computing the report directly on the model's predictions
    proba = model.predict_proba(test.to_pandas()[FEATURES_NUMERIC + FEATURES_CATEGORICAL])[:, 1]
    direct = fairness_report(test[TARGET].to_numpy(), (proba >= 0.5).astype(int), test.select(["sex", "age_band"]),
                             n_bootstrap=50)
    assert report.summary["demographic_parity_ratio"] == pytest.approx(direct.summary["demographic_parity_ratio"], abs=1e-12)
    assert report.verdict in ("pass", "fail", "review") and report.policy["risk_tier"] == "high"
    if report.summary["demographic_parity_ratio"] < 0.8:
        assert report.verdict == "fail" and any("demographic parity" in r for r in report.reasons)
    stored = ws.evidence("credit")
    assert stored.select(["version", "kind", "verdict"]).rows() == [(mv.version, "fairness", report.verdict)]
    summary, table = ws.evidence_detail(stored["id"].item())
    assert summary["verdict"] == report.verdict and summary["reasons"] == report.reasons
    assert table.equals(report.by_group)
    events = op.audit_events().filter(pl.col("action") == "evidence.fairness")
    assert events["entity_id"].to_list() == [f"credit/{mv.version}"]
    assert op.verify_audit().ok


def test_fairness_bad_input_is_named(ws, credit_version):
    mv, _, test = credit_version
    with pytest.raises(wb.ValidationError, match="religion"):
        ws.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["religion"])
    with pytest.raises(wb.ValidationError, match="input column"):
        ws.fairness(mv, test.drop("income"), test[TARGET].to_numpy(), sensitive_features=["sex"])
    y = test[TARGET].to_numpy().astype(float)
    y[5] = np.nan
    with pytest.raises(wb.ValidationError, match="NaN"):
        ws.fairness(mv, test, y, sensitive_features=["sex"])
    # no rows: refused by name, not with scikit-learn's error from predicting on nothing
    with pytest.raises(wb.ValidationError, match=r"X has no rows"):
        ws.fairness(mv, test.clear(), test[TARGET].to_numpy()[:0], sensitive_features=["sex"])
    with pytest.raises(wb.ValidationError, match=r"X has no rows"):
        ws.fairness(mv, test.clear(), [], y_pred=[], sensitive_features=["sex"])
    assert ws.evidence("credit").is_empty()  # nothing stored for refused input


def test_reviewer_may_not_compute_evidence(op, store_path, credit_version):
    mv, _, test = credit_version
    op.add_user("riley", "reviewer", None)
    riley = wb.connect(store_path, user="riley")
    with pytest.raises(wb.PermissionDenied):
        riley.fairness(mv, test, test[TARGET].to_numpy(), sensitive_features=["sex"])


V1_TABLES = {"store_info", "users", "experiments", "runs", "params", "tags", "metrics", "latest_metrics", "datasets",
             "run_datasets", "dataset_lineage", "artifacts", "registered_models", "model_versions", "model_aliases",
             "audit_events"}
V1_SEQUENCES = {"users_id_seq", "experiments_id_seq", "datasets_id_seq", "registered_models_id_seq", "model_versions_id_seq"}


def test_an_older_store_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.duckdb"
    op = operator_workspace(path)
    op.add_user("dana", "data_scientist", None)
    op.close()
    shared.close(path)
    c = duckdb.connect(str(path))  # make it a version-1 store: none of the tables added since
    for (table,) in c.execute("select table_name from duckdb_tables()").fetchall():
        if table not in V1_TABLES:
            c.execute(f"drop table {table}")
    for (seq,) in c.execute("select sequence_name from duckdb_sequences()").fetchall():
        if seq not in V1_SEQUENCES:
            c.execute(f"drop sequence {seq}")
    c.execute("update store_info set schema_version = 1")
    c.close()
    op = operator_workspace(path)
    assert op.store.scalar("select schema_version from store_info") == schema.SCHEMA_VERSION
    assert op.evidence().is_empty()
    migrated = op.audit_events().filter(pl.col("action") == "store.migrate")
    assert migrated["payload"].to_list() == ['{"by":"' + wb.__version__ + f'","from":1,"to":{schema.SCHEMA_VERSION}}}']
    assert op.verify_audit().ok
    assert op.users()["name"].to_list() == ["dana"]  # nothing lost


def test_explanation_is_stored_with_its_row_values(ws, op, credit_version, capsys):
    mv, model, test = credit_version
    frame = test.head(400).with_columns(pl.format("A{}", pl.int_range(pl.len())).alias("case"))
    result = ws.explain(mv, frame.drop(["sex", "age_band", "default", "applicant_id", "application_month"]),
                        row_id="case", progress=True, max_rows=300)
    assert result.additivity["passed"] and result.feature_space == "original"
    assert result.sampled["rows_explained"] == 300 and result.sampled["rows_total"] == 400
    stored = ws.evidence("credit").filter(pl.col("kind") == "explanation")
    assert stored["verdict"].to_list() == [None]
    summary, values = ws.evidence_detail(stored["id"].item())
    assert summary["explainer"] == result.explainer and summary["additivity"]["passed"] is True
    # "case" is a key (every value differs), so the stored row ids are its keyed tokens
    key = keys.pseudonym_key()
    assert values.height == 300 and values["row_id"].to_list() == [pseudonyms.token(r, key) for r in result.row_ids]
    assert all(str(r).startswith("A") for r in result.row_ids)  # the caller's own result keeps its ids
    top = summary["global_importance"][0]
    assert top["feature"] == result.global_importance["feature"][0]
    assert "Explaining credit" in capsys.readouterr().err  # the progress bar was shown
    assert op.audit_events().filter(pl.col("action") == "evidence.explanation").height == 1


def test_explanation_masks_protected_and_identifying_features_per_row(ws, credit_version):
    mv, _, test = credit_version
    frame = test.head(100).with_columns(pl.format("C{}", pl.int_range(pl.len())).alias("customer_id"))
    cols = FEATURES_NUMERIC + FEATURES_CATEGORICAL  # the model's inputs: age among them
    default = ws.explain(mv, frame.select(["customer_id", *cols]), row_id="customer_id")
    assert ws.evidence_summary(default.evidence_id)["masked"] == ["age"]
    chosen = ws.explain(mv, frame.select(cols), masked=["income"])
    assert ws.evidence_summary(chosen.evidence_id)["masked"] == ["income"]
    with pytest.raises(wb.ValidationError, match="'salary'"):
        ws.explain(mv, frame.select(cols), masked=["salary"])
    for read in (ws.evidence_summary, ws.evidence_detail, ws.evidence_policy):
        with pytest.raises(wb.ValidationError, match="'credit'"):
            read("credit")  # a model name where an evidence id belongs


def test_favorable_label_zero_measures_approval_rates(ws, credit_version):
    mv, _, test = credit_version
    y = test[TARGET].to_numpy()
    harm = ws.fairness(mv, test, y, sensitive_features=["sex"], n_bootstrap=0)
    good = ws.fairness(mv, test, y, sensitive_features=["sex"], n_bootstrap=0, favorable_label=0)
    a = harm.by_group.sort("group")["selection_rate"].to_numpy()
    b = good.by_group.sort("group")["selection_rate"].to_numpy()
    assert np.allclose(a + b, 1.0)  # approval rate = 1 - predicted default rate, per group
    summary, _ = ws.evidence_detail(ws.evidence("credit")["id"].item())
    assert summary["favorable_label"] == 0
    with pytest.raises(wb.ValidationError, match="favorable_label"):
        ws.fairness(mv, test, y, sensitive_features=["sex"], favorable_label=2)
