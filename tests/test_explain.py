"""workbench.evidence.explain: explainer choice, outputs, additivity, pipelines, sampling, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from workbench.demo.datasets import (
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    TARGET,
    make_credit_applicants,
)
from workbench.errors import ValidationError
from workbench.evidence.explain import TOLERANCES, Explanation, explain_model

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="module")
def binary_data():
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, random_state=0)
    cols = [f"f{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=cols), y


def _recon(ex: Explanation):
    return ex.base_values + ex.values.sum(axis=1)


@pytest.mark.parametrize("model,output", [
    (HistGradientBoostingClassifier(max_iter=30, random_state=0), "log_odds"),
    (RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), "probability"),
    (GradientBoostingClassifier(n_estimators=20, random_state=0), "probability"),
])
def test_tree_binary_classifiers(binary_data, model, output):
    X, y = binary_data
    model.fit(X, y)
    ex = explain_model(model, X, y=y)
    assert ex.explainer == "TreeExplainer"
    assert ex.output == output
    assert ex.values.shape == (len(X), X.shape[1])
    assert ex.additivity["passed"], ex.additivity
    assert ex.additivity["tolerance"] <= TOLERANCES["TreeExplainer"] * 10
    # recompute the check against the documented model output
    expected = (model.predict_proba(X)[:, 1] if output == "probability"
                else model.decision_function(X))
    np.testing.assert_allclose(_recon(ex), expected, atol=1e-6)


def test_tree_classifier_can_be_asked_for_log_odds(binary_data):
    X, y = binary_data
    model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    ex = explain_model(model, X.head(100), output="log_odds")
    assert ex.output == "log_odds" and ex.additivity["compared_with"] == "decision_function"
    assert ex.additivity["passed"]


def test_logistic_regression_linear_explainer(binary_data):
    X, y = binary_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    ex = explain_model(model, pl.from_pandas(X))
    assert ex.explainer == "LinearExplainer"
    assert ex.output == "log_odds"
    assert ex.additivity["passed"]
    np.testing.assert_allclose(_recon(ex), model.decision_function(X), atol=1e-8)


def test_regressor_additivity_vs_predict():
    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    model = RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
    ex = explain_model(model, X, y=y)
    assert ex.explainer == "TreeExplainer" and ex.output == "prediction"
    assert ex.additivity["passed"], ex.additivity
    np.testing.assert_allclose(_recon(ex), model.predict(X), rtol=1e-6, atol=1e-6)
    assert ex.classes is None


def test_multiclass_shape_per_class():
    data = load_iris(as_frame=True)
    X, y = data.data, data.target
    model = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(X, y)
    ex = explain_model(model, X, y=y)
    assert ex.values.shape == (150, 4, 3)
    assert ex.base_values.shape == (150, 3)
    assert ex.output == "probability" and ex.additivity["passed"]
    np.testing.assert_allclose(_recon(ex), model.predict_proba(X), atol=1e-6)
    assert ex.classes == [0, 1, 2]
    frame = ex.to_frame()
    assert frame.height == 150 * 3 and "class" in frame.columns
    assert ex.to_frame("long").height == 150 * 4 * 3
    assert "mean_abs_shap:1" in ex.global_importance.columns


def test_multiclass_hist_gradient_boosting_raw():
    data = load_iris(as_frame=True)
    model = HistGradientBoostingClassifier(max_iter=10).fit(data.data, data.target)
    ex = explain_model(model, data.data)
    assert ex.explainer == "TreeExplainer" and ex.output == "raw"
    assert ex.values.shape == (150, 4, 3) and ex.additivity["passed"]


@pytest.fixture(scope="module")
def credit():
    df = make_credit_applicants(1500, seed=3)
    X = df.select(["applicant_id", *FEATURES_NUMERIC, *FEATURES_CATEGORICAL])
    return X, df[TARGET].to_numpy()


def _pipeline(est):
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), FEATURES_CATEGORICAL),
         ("num", "passthrough", FEATURES_NUMERIC)])
    return Pipeline([("pre", pre), ("model", est)])


def test_pipeline_onehot_summed_to_original_columns(credit):
    X, y = credit
    feats = X.drop("applicant_id")
    pipe = _pipeline(HistGradientBoostingClassifier(max_iter=30, random_state=0))
    pipe.fit(feats.to_pandas(), y)
    ex = explain_model(pipe, X, row_id="applicant_id", y=y, max_rows=400)
    assert ex.explainer == "TreeExplainer"
    assert ex.feature_space == "original"
    assert "summed" in ex.note
    assert sorted(ex.feature_names) == sorted(FEATURES_NUMERIC + FEATURES_CATEGORICAL)
    gi = ex.global_importance
    assert gi.height == len(FEATURES_NUMERIC) + len(FEATURES_CATEGORICAL)
    assert gi["feature"].n_unique() == gi.height
    assert ex.additivity["passed"], ex.additivity
    # additivity against the whole pipeline, recomputed here
    rows = feats.to_pandas().set_index(X["applicant_id"].to_pandas()).loc[ex.row_ids]
    np.testing.assert_allclose(_recon(ex), pipe.decision_function(rows.reset_index(drop=True)),
                               atol=1e-6)
    # ids from the id column; partial dependence over original columns (categoricals too)
    assert set(ex.row_ids) <= set(X["applicant_id"].to_list())
    assert set(ex.partial_dependence) == set(gi["feature"].head(5).to_list())
    assert ex.permutation_importance.height == gi.height


def test_model_neither_tree_nor_linear_uses_permutation(binary_data):
    X, y = binary_data
    model = KNeighborsClassifier(n_neighbors=5).fit(X, y)
    ex = explain_model(model, X, max_rows=4, background_size=20)
    assert ex.explainer == "PermutationExplainer"
    assert "neither a tree nor a linear model" in ex.note
    assert ex.output == "probability"
    assert ex.additivity["passed"] and ex.additivity["tolerance"] >= 1e-4
    assert ex.values.shape == (4, X.shape[1])


def test_max_rows_sampling_is_stated(binary_data):
    X, y = binary_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    ex = explain_model(model, X, max_rows=50, seed=7)
    assert ex.sampled["rows_total"] == 600 and ex.sampled["rows_explained"] == 50
    assert ex.sampled["seed"] == 7 and "random" in ex.sampled["method"]
    assert "explained 50 of 600 rows" in ex.note
    again = explain_model(model, X, max_rows=50, seed=7)
    assert again.row_ids == ex.row_ids
    full = explain_model(model, X.head(30))
    assert full.sampled["rows_explained"] == 30 and full.sampled["method"] == "all rows"


def test_mismatched_columns_named(binary_data):
    X, y = binary_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    bad = X.drop(columns=["f2"]).assign(zzz=1.0)
    with pytest.raises(ValidationError, match=r"f2") as exc:
        explain_model(model, bad)
    assert "zzz" in str(exc.value) and "missing" in str(exc.value)


def test_bad_input(binary_data):
    X, y = binary_data
    with pytest.raises(ValidationError, match="not fitted"):
        explain_model(LogisticRegression(), X)
    with pytest.raises(ValidationError, match="unsupported model"):
        explain_model(object(), X)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(ValidationError, match="empty"):
        explain_model(model, X.head(0))
    with pytest.raises(ValidationError, match="polars or pandas"):
        explain_model(model, X.to_numpy())


def test_row_ids_preserved_in_frame(binary_data):
    X, y = binary_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    Xi = X.head(40).copy()
    Xi.index = [f"r{i}" for i in range(100, 140)]
    ex = explain_model(model, Xi)
    frame = ex.to_frame()
    assert frame["row_id"].to_list() == list(Xi.index)
    assert frame.columns[:2] == ["row_id", "base_value"]
    # a row_id column (polars) is used and excluded from the features
    Xp = pl.from_pandas(X.head(40)).with_columns(pl.Series("row_id", np.arange(500, 540)))
    ex2 = explain_model(model, Xp)
    assert ex2.feature_names == list(X.columns)
    assert ex2.to_frame()["row_id"].to_list() == list(range(500, 540))
    long = ex2.to_frame("long")
    assert long.columns == ["row_id", "feature", "shap_value"] and long.height == 40 * 6


def test_progress_called_per_chunk(binary_data):
    X, y = binary_data
    model = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    calls = []
    explain_model(model, X, progress=lambda d, t: calls.append((d, t)), chunk_rows=250)
    assert calls == [(250, 600), (500, 600), (600, 600)]


def test_permutation_importance_and_partial_dependence(binary_data, tmp_path):
    X, y = binary_data
    model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
    ex = explain_model(model, X, y=y, top_k=3)
    pi = ex.permutation_importance
    assert pi.columns == ["feature", "importance_mean", "importance_std"]
    assert pi.height == 6 and pi["importance_mean"].is_sorted(descending=True)
    top = ex.global_importance["feature"].head(3).to_list()
    assert list(ex.partial_dependence) == top
    for f in top:
        pdp = ex.partial_dependence[f]
        assert len(pdp["grid"]) == len(pdp["average"]) > 1
    # no y: skipped with a note
    ex2 = explain_model(model, X.head(50))
    assert ex2.permutation_importance is None and "skipped" in ex2.note
    # summary is JSON-safe; the frame writes to Parquet
    json.dumps(ex.summary())
    path = tmp_path / "shap.parquet"
    ex.to_frame(with_values=True).write_parquet(path)
    back = pl.read_parquet(path)
    assert back.height == 600 and "value:f0" in back.columns


def test_global_importance_sorted(binary_data):
    X, y = binary_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    gi = explain_model(model, X).global_importance
    assert gi.columns == ["feature", "mean_abs_shap"]
    assert gi["mean_abs_shap"].is_sorted(descending=True)
