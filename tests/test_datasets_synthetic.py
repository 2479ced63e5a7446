"""Tests for workbench.demo.datasets (synthetic credit applicants)."""

from __future__ import annotations

import doctest
import time

import numpy as np
import polars as pl
import pytest

import workbench.demo.datasets as ds

# Expected label-rate properties (documented in the module docstring).
DEFAULT_RATE_BAND = (0.15, 0.25)  # overall default rate, reference month
FEMALE_GAP_MIN = 0.02  # female default rate - male default rate, at least
FEMALE_GAP_MAX = 0.10  # ... and not absurdly large

INT_COLS = [
    "age",
    "loan_term_months",
    "num_open_accounts",
    "num_late_payments_2y",
    ds.TARGET,
]
FLOAT_COLS = [c for c in ds.FEATURES_NUMERIC if c not in INT_COLS]
STRING_COLS = ["applicant_id", "application_month", *ds.FEATURES_CATEGORICAL, *ds.SENSITIVE]


@pytest.fixture(scope="module")
def ref() -> pl.DataFrame:
    return ds.make_credit_applicants(20_000, month="2026-01", seed=0)


@pytest.fixture(scope="module")
def drifted() -> pl.DataFrame:
    return ds.make_credit_applicants(20_000, month="2026-02", drifted=True, seed=0)


def _default_rate_by_sex(df: pl.DataFrame) -> dict[str, float]:
    rows = df.group_by("sex").agg(pl.col(ds.TARGET).mean()).rows()
    return {sex: rate for sex, rate in rows}


# --- constants and schema ---------------------------------------------------


def test_constants():
    assert ds.SENSITIVE == ["sex", "age_band"]
    assert ds.IDENTIFYING == ["applicant_id"]
    assert ds.TARGET == "default"
    assert len(ds.FEATURES_NUMERIC) == 10
    assert set(ds.FEATURES_CATEGORICAL) == {
        "employment_type",
        "housing",
        "loan_purpose",
        "region",
        "postcode_area",
    }
    groups = [ds.FEATURES_NUMERIC, ds.FEATURES_CATEGORICAL, ds.SENSITIVE, ds.IDENTIFYING]
    flat = [c for g in groups for c in g] + [ds.TARGET]
    assert len(flat) == len(set(flat)), "feature groups must not overlap"


def test_columns_and_dtypes(ref):
    expected = [
        "applicant_id",
        "application_month",
        *ds.FEATURES_NUMERIC,
        *ds.FEATURES_CATEGORICAL,
        *ds.SENSITIVE,
        ds.TARGET,
    ]
    assert ref.columns == expected
    assert ref.height == 20_000
    for c in INT_COLS:
        assert ref.schema[c] == pl.Int64, c
    for c in FLOAT_COLS:
        assert ref.schema[c] == pl.Float64, c
    for c in STRING_COLS:
        assert ref.schema[c] == pl.String, c


def test_no_nulls_or_nans(ref, drifted):
    for df in (ref, drifted):
        assert df.null_count().row(0) == (0,) * df.width
        for c in FLOAT_COLS:
            assert np.isfinite(df[c].to_numpy()).all(), c


# --- determinism ------------------------------------------------------------


def test_same_arguments_give_identical_frames():
    a = ds.make_credit_applicants(3_000, seed=7)
    b = ds.make_credit_applicants(3_000, seed=7)
    assert a.equals(b)
    c = ds.make_credit_applicants(3_000, month="2026-05", drifted=True, seed=7)
    d = ds.make_credit_applicants(3_000, month="2026-05", drifted=True, seed=7)
    assert c.equals(d)


def test_default_arguments(ref):
    assert ds.make_credit_applicants().equals(ref)


def test_different_seed_month_or_drift_differ():
    base = ds.make_credit_applicants(3_000, seed=0)
    other_seed = ds.make_credit_applicants(3_000, seed=1)
    other_month = ds.make_credit_applicants(3_000, month="2026-02", seed=0)
    drift = ds.make_credit_applicants(3_000, drifted=True, seed=0)
    for other in (other_seed, other_month, drift):
        assert not base.equals(other)
        assert not base["income"].equals(other["income"])
    # a different month is a different draw, not just a relabelled copy
    assert not base.drop("application_month").equals(other_month.drop("application_month"))
    assert set(other_month["application_month"].unique()) == {"2026-02"}
    assert set(base["application_month"].unique()) == {"2026-01"}


# --- value ranges -----------------------------------------------------------


def test_value_ranges(ref, drifted):
    for df in (ref, drifted):
        ids = df["applicant_id"]
        assert ids.n_unique() == df.height
        assert ids.str.contains(r"^A\d{6}$").all()
        assert ids[0] == "A000001"

        age = df["age"]
        assert age.min() >= 18 and age.max() <= 80
        assert df["income"].min() > 0
        assert df["loan_amount"].min() > 0
        assert set(df["loan_term_months"].unique()) <= {12, 24, 36, 48, 60}
        assert df["num_open_accounts"].min() >= 0
        assert df["num_late_payments_2y"].min() >= 0
        dti = df["debt_to_income"]
        assert dti.min() >= 0 and dti.max() <= 1.5
        assert df["savings_balance"].min() >= 0
        adult_years = (df["age"] - 18).cast(pl.Float64)
        for c in ("credit_history_years", "employment_years"):
            assert df[c].min() >= 0, c
            assert (df[c] <= adult_years + 1e-9).all(), c

        allowed = {
            "employment_type": {"employed", "self_employed", "unemployed", "retired", "student"},
            "housing": {"own", "rent", "mortgage", "other"},
            "loan_purpose": {
                "car",
                "home_improvement",
                "debt_consolidation",
                "education",
                "business",
                "other",
            },
            "region": {"north", "south", "east", "west", "capital"},
            "sex": {"female", "male"},
            "age_band": {"18-25", "26-35", "36-50", "51-65", "65+"},
        }
        for col, values in allowed.items():
            assert set(df[col].unique()) == values, col
        assert 15 <= df["postcode_area"].n_unique() <= 25
        assert set(df[ds.TARGET].unique()) == {0, 1}


def test_realistic_marginals(ref):
    income = ref["income"]
    assert 25_000 < income.median() < 50_000
    assert income.mean() > income.median()  # log-normal: right-skewed
    assert 0.45 < (ref["sex"] == "female").mean() < 0.55
    late = ref["num_late_payments_2y"].to_numpy()
    assert 0.2 < late.mean() < 1.0
    assert 0.5 < late.var() / late.mean() < 2.0  # Poisson-like dispersion


def test_age_band_consistent_with_age(ref, drifted):
    for df in (ref, drifted):
        expected = (
            pl.when(pl.col("age") <= 25)
            .then(pl.lit("18-25"))
            .when(pl.col("age") <= 35)
            .then(pl.lit("26-35"))
            .when(pl.col("age") <= 50)
            .then(pl.lit("36-50"))
            .when(pl.col("age") <= 65)
            .then(pl.lit("51-65"))
            .otherwise(pl.lit("65+"))
        )
        bad = df.filter(expected != pl.col("age_band"))
        assert bad.height == 0, bad.select("age", "age_band").head()


def test_postcode_region_mapping_is_fixed(ref):
    # every postcode area belongs to exactly one region
    per_code = ref.group_by("postcode_area").agg(pl.col("region").n_unique())
    assert per_code["region"].max() == 1


# --- target and bias --------------------------------------------------------


def test_overall_default_rate_in_band(ref):
    lo, hi = DEFAULT_RATE_BAND
    assert lo <= ref[ds.TARGET].mean() <= hi


def test_female_default_rate_exceeds_male(ref, drifted):
    for df in (ref, drifted):
        rates = _default_rate_by_sex(df)
        gap = rates["female"] - rates["male"]
        assert FEMALE_GAP_MIN <= gap <= FEMALE_GAP_MAX, rates


def test_postcode_is_a_proxy_for_sex(ref):
    pen = pl.col("postcode_area").is_in(ds.PENALISED_POSTCODES)
    shares = dict(ref.group_by("sex").agg(pen.mean().alias("p")).rows())
    assert shares["female"] - shares["male"] > 0.2
    # the penalised areas have a clearly higher recorded default rate
    by_area = dict(ref.group_by(pen.alias("pen")).agg(pl.col(ds.TARGET).mean()).rows())
    assert by_area[True] - by_area[False] > 0.04


def test_model_without_sex_shows_selection_gap():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = ds.make_credit_applicants(20_000, seed=0)
    train, test = ds.train_test_split_frame(df, test_size=0.25, seed=0)

    def design(frame: pl.DataFrame) -> np.ndarray:
        num = frame.select(ds.FEATURES_NUMERIC).to_numpy()
        cats = [
            (frame[c].to_numpy()[:, None] == np.asarray(levels)[None, :]).astype(float)
            for c, levels in [
                ("employment_type", ds.EMPLOYMENT_TYPES),
                ("housing", ds.HOUSING_TYPES),
                ("loan_purpose", ds.LOAN_PURPOSES),
                ("region", ds.REGIONS),
                ("postcode_area", ds.POSTCODE_AREAS),
            ]
        ]
        return np.column_stack([num, *cats])  # note: no `sex`, no `age_band`

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2_000))
    clf.fit(design(train), train[ds.TARGET].to_numpy())
    score = clf.predict_proba(design(test))[:, 1]
    flagged = score >= np.quantile(score, 0.8)  # reject the riskiest 20%
    female = test["sex"].to_numpy() == "female"
    assert flagged[female].mean() - flagged[~female].mean() > 0.02
    assert score[female].mean() - score[~female].mean() > 0.015


def test_target_is_learnable_from_numeric_features():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = ds.make_credit_applicants(10_000, seed=0)
    train, test = ds.train_test_split_frame(df, test_size=0.25, seed=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    clf.fit(train.select(ds.FEATURES_NUMERIC).to_numpy(), train[ds.TARGET].to_numpy())
    proba = clf.predict_proba(test.select(ds.FEATURES_NUMERIC).to_numpy())[:, 1]
    auc = roc_auc_score(test[ds.TARGET].to_numpy(), proba)
    assert auc > 0.65, auc


# --- drift ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_5k() -> pl.DataFrame:
    return ds.make_credit_applicants(5_000, month="2026-01", seed=0)


@pytest.fixture(scope="module")
def drift_5k() -> pl.DataFrame:
    return ds.make_credit_applicants(5_000, month="2026-02", drifted=True, seed=0)


def _share(df: pl.DataFrame, col: str, value: str) -> float:
    return float((df[col] == value).mean())


def test_drift_direction(ref_5k, drift_5k):
    ratio = drift_5k["income"].mean() / ref_5k["income"].mean()
    assert 0.80 < ratio < 0.93, ratio  # roughly 10-15% lower
    dc = _share(drift_5k, "loan_purpose", "debt_consolidation") - _share(
        ref_5k, "loan_purpose", "debt_consolidation"
    )
    assert dc > 0.07, dc
    assert _share(drift_5k, "housing", "rent") - _share(ref_5k, "housing", "rent") > 0.05
    assert drift_5k["debt_to_income"].mean() > ref_5k["debt_to_income"].mean() + 0.02
    assert drift_5k["age"].mean() < ref_5k["age"].mean() - 2
    assert drift_5k["savings_balance"].mean() < ref_5k["savings_balance"].mean()


def test_drifted_default_rate_higher(ref, drifted):
    diff = drifted[ds.TARGET].mean() - ref[ds.TARGET].mean()
    assert 0.02 < diff < 0.12, diff


def test_ks_detects_income_shift(ref_5k, drift_5k):
    from scipy.stats import ks_2samp

    res = ks_2samp(ref_5k["income"].to_numpy(), drift_5k["income"].to_numpy())
    assert res.pvalue < 1e-6, res
    for col in ("debt_to_income", "age"):
        assert ks_2samp(ref_5k[col].to_numpy(), drift_5k[col].to_numpy()).pvalue < 1e-6, col


def test_unchanged_columns_stay_put(ref_5k, drift_5k):
    # num_open_accounts ~ 1 + Poisson(2.5): SE of the mean difference ~0.03
    assert abs(drift_5k["num_open_accounts"].mean() - ref_5k["num_open_accounts"].mean()) < 0.15
    # loan_term_months: sd ~15.5, SE of the mean difference ~0.31
    assert abs(drift_5k["loan_term_months"].mean() - ref_5k["loan_term_months"].mean()) < 1.2
    assert abs(_share(drift_5k, "sex", "female") - _share(ref_5k, "sex", "female")) < 0.03
    for code in ds.PENALISED_POSTCODES[:2]:
        shift = _share(drift_5k, "postcode_area", code) - _share(ref_5k, "postcode_area", code)
        assert abs(shift) < 0.02, code


# --- train/test split -------------------------------------------------------


def test_train_test_split_frame():
    df = ds.make_credit_applicants(1_000, seed=3)
    train, test = ds.train_test_split_frame(df, test_size=0.25, seed=0)
    assert isinstance(train, pl.DataFrame) and isinstance(test, pl.DataFrame)
    assert (train.height, test.height) == (750, 250)
    assert train.columns == df.columns == test.columns
    tr_ids, te_ids = set(train["applicant_id"]), set(test["applicant_id"])
    assert not tr_ids & te_ids
    assert tr_ids | te_ids == set(df["applicant_id"])
    # each part keeps the original row order
    assert train["applicant_id"].is_sorted() and test["applicant_id"].is_sorted()

    again = ds.train_test_split_frame(df, test_size=0.25, seed=0)
    assert again[0].equals(train) and again[1].equals(test)
    other = ds.train_test_split_frame(df, test_size=0.25, seed=1)
    assert not other[1].equals(test)

    _, small = ds.train_test_split_frame(df, test_size=0.1)
    assert small.height == 100


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_train_test_split_frame_rejects_bad_test_size(bad):
    df = ds.make_credit_applicants(100)
    with pytest.raises(ValueError):
        ds.train_test_split_frame(df, test_size=bad)


# --- argument validation, speed, docs --------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": -5},
        {"month": "2026-13"},
        {"month": "January"},
        {"month": "2026-1"},
        {"seed": -1},
    ],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ds.make_credit_applicants(**{"n": 100, **kwargs})


def test_small_n():
    df = ds.make_credit_applicants(1)
    assert df.shape == (1, 20)
    assert df["applicant_id"].to_list() == ["A000001"]


def test_generation_is_fast():
    ds.make_credit_applicants(100)  # warm-up
    t0 = time.perf_counter()
    ds.make_credit_applicants(20_000, seed=123)
    assert time.perf_counter() - t0 < 1.0


def test_module_docstring_example():
    assert ds.__doc__ and ">>>" in ds.__doc__
    result = doctest.testmod(ds, verbose=False)
    assert result.attempted > 0 and result.failed == 0
