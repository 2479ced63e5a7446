"""workbench.evidence.fairness against fairlearn 0.15 (MetricFrame and fairlearn.metrics), to 1e-9."""

from __future__ import annotations

import functools
import json
import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from workbench.demo.datasets import make_credit_applicants
from workbench.errors import ValidationError
from workbench.evidence.fairness import FairnessReport, fairness_report

TOL = 1e-9


def close(a, b) -> bool:
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


@pytest.fixture(scope="module")
def credit():
    """Synthetic applicants with a quick logistic-regression score (seeded, deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    df = make_credit_applicants(8_000, seed=3)
    feats = ["income", "debt_to_income", "num_late_payments_2y", "credit_history_years",
             "loan_amount", "savings_balance"]
    X = StandardScaler().fit_transform(df.select(feats).to_numpy())
    y = df["default"].to_numpy()
    score = LogisticRegression(max_iter=200).fit(X, y).predict_proba(X)[:, 1]
    # predict "default" liberally so every group has predicted positives and negatives
    y_pred = (score >= np.quantile(score, 0.7)).astype(int)
    return {
        "y": y,
        "score": score,
        "y_pred": y_pred,
        "sens_pl": df.select("sex", "age_band"),
        "sens_pd": df.select("sex", "age_band").to_pandas(),
        "df": df,
    }


FAIRLEARN_METRICS = {
    "selection_rate": selection_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    # undefined precision is NaN in the report (scikit-learn's default would be 0 + warning)
    "precision": functools.partial(skm.precision_score, zero_division=np.nan),
    "accuracy": skm.accuracy_score,
    "count": count,
}


def _fl_by_group(y, p, sens_pd: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """fairlearn's by_group per single feature and the intersection, keyed like the report."""
    out = {}
    for c in sens_pd.columns:
        mf = MetricFrame(metrics=FAIRLEARN_METRICS, y_true=y, y_pred=p, sensitive_features=sens_pd[c])
        out[c] = mf.by_group
    if sens_pd.shape[1] == 2:
        mf = MetricFrame(metrics=FAIRLEARN_METRICS, y_true=y, y_pred=p, sensitive_features=sens_pd)
        bg = mf.by_group.dropna(subset=["count"])
        bg.index = [" & ".join(map(str, ix)) for ix in bg.index]
        out[" & ".join(sens_pd.columns)] = bg
    return out


def _fl_summary(y, p, sf) -> dict[str, float]:
    return {
        "demographic_parity_difference": demographic_parity_difference(y, p, sensitive_features=sf),
        "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=sf),
        "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=sf),
        "equal_opportunity_difference": equal_opportunity_difference(y, p, sensitive_features=sf),
    }


def _assert_matches_fairlearn(rep: FairnessReport, y, p, sens_pd: pd.DataFrame) -> int:
    checked = 0
    fl = _fl_by_group(y, p, sens_pd)
    assert set(fl) == set(rep.by_group["feature"].unique())
    ours = {(r["feature"], r["group"]): r for r in rep.by_group.iter_rows(named=True)}
    for feat, bg in fl.items():
        assert sorted(str(g) for g in bg.index) == sorted(g for f, g in ours if f == feat)
        for g, row in bg.iterrows():
            mine = ours[(feat, str(g))]
            for m in FAIRLEARN_METRICS:
                assert close(mine[m], row[m]), (feat, g, m, mine[m], row[m])
                checked += 1
    cols = list(sens_pd.columns)
    for feat in fl:
        sf = sens_pd[cols] if " & " in feat else sens_pd[feat]
        want = _fl_summary(y, p, sf)
        got = rep.summary["by_feature"][feat]
        for k, v in want.items():
            assert close(got[k], v), (feat, k, got[k], v)
            checked += 1
    # the top-level summary is fairlearn's call with all sensitive columns at once
    want = _fl_summary(y, p, sens_pd if len(cols) == 2 else sens_pd[cols[0]])
    for k, v in want.items():
        assert close(rep.summary[k], v), (k, rep.summary[k], v)
    return checked


# --------------------------------------------------------------------------- vs fairlearn


def test_binary_matches_fairlearn_single_and_intersection(credit):
    rep = fairness_report(credit["y"], credit["y_pred"], credit["sens_pl"], n_bootstrap=0)
    n = _assert_matches_fairlearn(rep, credit["y"], credit["y_pred"], credit["sens_pd"])
    assert n > 6 * (2 + 5 + 10)
    assert rep.summary["primary"] == "sex & age_band"
    assert rep.by_group.filter(pl.col("feature") == "sex").height == 2


def test_binary_single_feature_pandas_and_dict_inputs(credit):
    y, p = credit["y"], credit["y_pred"]
    r1 = fairness_report(y, p, credit["sens_pd"][["age_band"]], n_bootstrap=0)
    _assert_matches_fairlearn(r1, y, p, credit["sens_pd"][["age_band"]])
    r2 = fairness_report(pd.Series(y), pl.Series(p), {"age_band": credit["sens_pd"]["age_band"].to_numpy()},
                         n_bootstrap=0)
    assert r1.by_group.equals(r2.by_group)
    r3 = fairness_report(y, p, ["sex", "age_band"], data=credit["df"], n_bootstrap=0)
    assert r3.by_group.height == 2 + 5 + 10


def test_y_score_threshold_equals_explicit_predictions(credit):
    y, s = credit["y"], credit["score"]
    a = fairness_report(y, None, credit["sens_pl"], y_score=s, threshold=0.3, n_bootstrap=0)
    b = fairness_report(y, (s >= 0.3).astype(int), credit["sens_pl"], n_bootstrap=0)
    assert a.by_group.equals(b.by_group)
    _assert_matches_fairlearn(a, y, (s >= 0.3).astype(int), credit["sens_pd"])


def test_regression_matches_fairlearn(credit):
    df = credit["df"]
    y = df["income"].to_numpy() / 1000.0
    rng = np.random.default_rng(1)
    pred = y * rng.normal(1.0, 0.2, len(y)) + (df["sex"] == "female").to_numpy() * 2.0
    rep = fairness_report(y, pred, credit["sens_pl"], task="regression")
    metrics = {"mean_prediction": lambda yt, yp: float(np.mean(yp)),
               "mae": skm.mean_absolute_error, "count": count}
    ours = {(r["feature"], r["group"]): r for r in rep.by_group.iter_rows(named=True)}
    sens = credit["sens_pd"]
    for feat, sf in [("sex", sens["sex"]), ("age_band", sens["age_band"]), ("sex & age_band", sens)]:
        mf = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=sf)
        bg = mf.by_group.dropna(subset=["count"])
        for g, row in bg.iterrows():
            key = " & ".join(g) if isinstance(g, tuple) else g
            for m in metrics:
                assert close(ours[(feat, key)][m], row[m]), (feat, key, m)
        s = rep.summary["by_feature"][feat]
        assert close(s["mean_prediction_difference"], mf.difference()["mean_prediction"])
        assert close(s["mean_prediction_ratio"], mf.ratio()["mean_prediction"])
        assert close(s["mae_difference"], mf.difference()["mae"])
        assert close(s["mae_ratio"], mf.ratio()["mae"])
    assert "four_fifths" not in rep.summary


# --------------------------------------------------------------------------- undefined rates


def test_group_without_positives_tpr_nan_and_summary_as_fairlearn():
    rng = np.random.default_rng(0)
    g = np.repeat(["a", "b", "c"], 100)
    y = rng.integers(0, 2, 300)
    y[:100] = 0  # group a: no positives
    p = rng.integers(0, 2, 300)
    p[200:] = 0  # group c: no predicted positives
    rep = fairness_report(y, p, {"g": g}, n_bootstrap=0)
    a = rep.by_group.filter(pl.col("group") == "a").row(0, named=True)
    assert a["n_positives"] == 0 and math.isnan(a["tpr"])  # undefined, never 0
    c = rep.by_group.filter(pl.col("group") == "c").row(0, named=True)
    assert math.isnan(c["precision"]) and c["selection_rate"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fl_tpr = MetricFrame(metrics=true_positive_rate, y_true=y, y_pred=p, sensitive_features=g).by_group
    assert fl_tpr["a"] == 0.0  # fairlearn/scikit-learn report 0 ...
    want = _fl_summary(y, p, g)  # ... and their summaries count it as 0, which we match
    for k, v in want.items():
        assert close(rep.summary[k], v), k
    b_tpr = rep.by_group.filter(pl.col("group") == "b")["tpr"][0]
    c_tpr = rep.by_group.filter(pl.col("group") == "c")["tpr"][0]
    assert close(rep.summary["equal_opportunity_difference"], max(b_tpr, c_tpr) - 0.0)
    assert rep.summary["groups_without_positives"] == ["a"]
    assert any("no positives" in n for n in rep.summary["notes"])
    # FPR of a group without negatives is NaN too
    y2 = y.copy()
    y2[100:200] = 1
    rep2 = fairness_report(y2, p, {"g": g}, n_bootstrap=0)
    assert math.isnan(rep2.by_group.filter(pl.col("group") == "b")["fpr"][0])
    assert close(rep2.summary["equalized_odds_difference"],
                 equalized_odds_difference(y2, p, sensitive_features=g))
    json.dumps(rep2.to_dict())


def test_nobody_selected_ratio_is_nan_like_fairlearn():
    g = np.repeat(["a", "b"], 50)
    y = np.tile([0, 1], 50)
    p = np.zeros(100, int)
    rep = fairness_report(y, p, {"g": g})
    assert math.isnan(rep.summary["demographic_parity_ratio"])
    assert math.isnan(demographic_parity_ratio(y, p, sensitive_features=g))
    ff = rep.summary["four_fifths"]
    assert ff["passed"] is None and "undefined" in ff["reason"]
    assert rep.by_group["four_fifths_pass"].null_count() == 2


# --------------------------------------------------------------------------- four-fifths


def _rates(spec: dict[str, tuple[int, int]]):
    """{group: (n, n_selected)} -> (y_true, y_pred, groups)."""
    gs, ps = [], []
    for g, (n, k) in spec.items():
        gs += [g] * n
        ps += [1] * k + [0] * (n - k)
    p = np.array(ps)
    y = np.tile([0, 1], len(p) // 2 + 1)[: len(p)]
    return y, p, np.array(gs)


def test_four_fifths_known_answers():
    # b / a = 40 / 50 = exactly 0.8 -> passes; c: 39/100 / 0.5 = 0.78 -> fails
    y, p, g = _rates({"a": (100, 50), "b": (100, 40), "c": (100, 39)})
    ff = fairness_report(y, p, {"g": g}, n_bootstrap=0).summary["four_fifths"]
    assert ff["comparison_group"] == "a"
    assert ff["groups"]["b"]["passed"] is True
    assert ff["groups"]["c"]["passed"] is False
    assert ff["passed"] is False and ff["worst_group"] == "c"
    assert close(ff["min_impact_ratio"], 0.78)
    y, p, g = _rates({"a": (100, 50), "b": (100, 40)})
    ff = fairness_report(y, p, {"g": g}, n_bootstrap=0).summary["four_fifths"]
    assert ff["passed"] is True and close(ff["min_impact_ratio"], 0.8)


def test_min_group_size_flags_and_does_not_judge():
    # tiny group d with rate 1.0 must neither fail nor become the comparison group
    y, p, g = _rates({"a": (200, 100), "b": (200, 90), "d": (5, 5), "e": (10, 0)})
    rep = fairness_report(y, p, {"g": g}, min_group_size=30, n_bootstrap=0)
    bg = {r["group"]: r for r in rep.by_group.iter_rows(named=True)}
    assert bg["d"]["flagged_small"] and bg["e"]["flagged_small"] and not bg["a"]["flagged_small"]
    assert bg["d"]["four_fifths_pass"] is None and bg["e"]["four_fifths_pass"] is None
    ff = rep.summary["four_fifths"]
    assert ff["comparison_group"] == "a" and ff["passed"] is True
    assert ff["flagged_small_groups"] == ["d", "e"]
    assert close(bg["e"]["impact_ratio"], 0.0)  # shown, not judged
    rep2 = fairness_report(y, p, {"g": g}, min_group_size=3, n_bootstrap=0)
    assert rep2.summary["four_fifths"]["comparison_group"] == "d"
    assert rep2.summary["four_fifths"]["passed"] is False


def test_bootstrap_ci_deterministic_and_contains_estimate(credit):
    y, p, s = credit["y"], credit["y_pred"], credit["sens_pl"]
    a = fairness_report(y, p, s, n_bootstrap=200, seed=7)
    b = fairness_report(y, p, s, n_bootstrap=200, seed=7)
    c = fairness_report(y, p, s, n_bootstrap=200, seed=8)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    for feat, sm in a.summary["by_feature"].items():
        ff = sm["four_fifths"]
        lo, hi = ff["min_impact_ratio_ci"]
        assert lo <= ff["min_impact_ratio"] <= hi, feat
        for g, gr in ff["groups"].items():
            if gr["judged"]:
                lo, hi = gr["impact_ratio_ci"]
                assert lo <= gr["impact_ratio"] <= hi, (feat, g)
    judged = a.by_group.filter(~pl.col("flagged_small"))
    assert (judged["impact_ratio_ci_low"] <= judged["impact_ratio"]).all()
    assert (judged["impact_ratio"] <= judged["impact_ratio_ci_high"]).all()


# --------------------------------------------------------------------------- report shape


def test_reference_group_default_largest_and_explicit(credit):
    y, p, s = credit["y"], credit["y_pred"], credit["sens_pl"]
    rep = fairness_report(y, p, s, n_bootstrap=0)
    vc = credit["df"]["age_band"].value_counts().sort("count", descending=True)
    assert rep.reference_group["age_band"] == vc["age_band"][0]
    ref = rep.by_group.filter(pl.col("is_reference"))
    assert ref.height == 3
    assert (ref["selection_rate_ratio"] == 1.0).all() and (ref["selection_rate_difference"] == 0).all()
    rep2 = fairness_report(y, p, s, n_bootstrap=0,
                           reference_group={"sex": "female", "sex & age_band": ("male", "26-35")})
    assert rep2.reference_group["sex"] == "female"
    assert rep2.reference_group["sex & age_band"] == "male & 26-35"
    f = rep2.by_group.filter(pl.col("feature") == "sex").sort("group")
    sel = f["selection_rate"].to_list()  # female, male
    assert close(f["selection_rate_ratio"][1], sel[1] / sel[0])
    with pytest.raises(ValidationError, match="does not occur"):
        fairness_report(y, p, s, reference_group={"sex": "other"})
    with pytest.raises(ValidationError, match="dict"):
        fairness_report(y, p, s, reference_group="female")


def test_to_dict_json_safe_and_stable_keys(credit):
    y, p = credit["y"], credit["y_pred"]
    rep = fairness_report(y, p, credit["sens_pl"], n_bootstrap=20)
    d = rep.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    g = np.repeat(["a", "b"], 40)
    y2 = np.tile([0, 1], 40)
    y2[:40] = 0
    d2 = fairness_report(y2, np.tile([1, 0], 40), {"g": g}, n_bootstrap=20).to_dict()
    json.dumps(d2, allow_nan=False)
    assert d2["by_group"][0]["tpr"] is None
    assert set(d2) == set(d)
    assert set(d2["summary"]) == set(d["summary"])
    assert set(d2["by_group"][0]) == set(d["by_group"][0])
    assert set(d2["summary"]["four_fifths"]) == set(d["summary"]["four_fifths"])


# --------------------------------------------------------------------------- bad input


def test_bad_input_messages():
    g = np.repeat(["a", "b"], 50)
    y = np.tile([0, 1], 50)
    p = np.tile([1, 0], 50)
    with pytest.raises(ValidationError, match="not found in the data"):
        fairness_report(y, p, ["gender"], data=pl.DataFrame({"sex": g}))
    with pytest.raises(ValidationError, match="no sensitive feature"):
        fairness_report(y, p, {})
    with pytest.raises(ValidationError, match="empty"):
        fairness_report([], [], {"g": []})
    with pytest.raises(ValidationError, match="missing"):
        fairness_report(y, p, {"g": None})
    with pytest.raises(ValidationError, match="one group only.*'a'"):
        fairness_report(y, p, {"g": np.repeat("a", 100)})
    with pytest.raises(ValidationError, match="lengths differ.*100.*99"):
        fairness_report(y, p[:99], {"g": g})
    with pytest.raises(ValidationError, match="lengths differ.*sensitive feature 'g' has 98"):
        fairness_report(y, p, {"g": g[:98]})
    yn = y.astype(float)
    yn[[3, 17]] = np.nan
    with pytest.raises(ValidationError, match=r"y_true has NaN.*2 of 100 rows.*3, 17"):
        fairness_report(yn, p, {"g": g})
    with pytest.raises(ValidationError, match=r"binary.*2"):
        fairness_report(np.tile([0, 1, 2, 1], 25), p, {"g": g})
    with pytest.raises(ValidationError, match="binary.*'yes'"):
        fairness_report(np.tile(["yes", "no"], 50), p, {"g": g})
    with pytest.raises(ValidationError, match="y_score"):
        fairness_report(y, None, {"g": g})
    with pytest.raises(ValidationError, match="at most 2"):
        fairness_report(y, p, {"a": g, "b": g, "c": g})
    with pytest.raises(ValidationError, match="task"):
        fairness_report(y, p, {"g": g}, task="multiclass")
    gn = g.astype(object)
    gn[5] = None
    with pytest.raises(ValidationError, match="'g' has missing values"):
        fairness_report(y, p, {"g": gn})
    # a second feature with one group only is named too
    with pytest.raises(ValidationError, match="'k' has one group only"):
        fairness_report(y, p, {"g": g, "k": np.repeat("x", 100)})
    # ValidationError is a ValueError for callers that catch those
    with pytest.raises(ValueError):
        fairness_report(y, p[:10], {"g": g})


def test_pandas_nullable_and_object_labels():
    g = np.repeat(["a", "b"], 50)
    p = np.tile([1, 0], 50)
    y = pd.Series(np.tile([0, 1], 50), dtype="Int64")
    rep = fairness_report(y, p, {"g": g}, n_bootstrap=0)
    assert rep.by_group.height == 2
    rep_obj = fairness_report(np.tile([0, 1], 50).astype(object), p, {"g": g}, n_bootstrap=0)
    assert rep_obj.by_group.equals(rep.by_group)
    y[7] = pd.NA
    with pytest.raises(ValidationError, match=r"y_true has NaN.*1 of 100 rows.*7"):
        fairness_report(y, p, {"g": g})


def test_favorable_label_zero_is_the_report_of_the_flipped_labels():
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    groups = {"g": rng.choice(["a", "b"], 500)}
    flipped = fairness_report(1 - y, 1 - p, groups, n_bootstrap=0)
    favourable = fairness_report(y, p, groups, n_bootstrap=0, favorable_label=0)
    assert favourable.by_group.equals(flipped.by_group)
    assert favourable.params["favorable_label"] == 0
    with pytest.raises(ValidationError, match="favorable_label"):
        fairness_report(y, p, groups, favorable_label=2)
