"""``workbench demo``: a realistic store to explore, seeded in well under 90 s on 2 cores.

Two use cases:
- credit risk, on synthetic applicants (:mod:`workbench.demo.datasets`): four model
  families, each a parent run with a hyperparameter sweep of child runs (30 children),
  the best of each family registered as a version of ``credit-default`` in various stages,
  plus a fifth version, a quick scorecard built from the application form alone. Every
  version carries a SHAP explanation and a fairness report by sex; the form-only
  scorecard leans on ``postcode_area``, a proxy for sex in this data, and is the one that
  fails the fairness screen. (Age is a real risk driver here, through employment and
  credit history: by age band every version fails, which notebook 02 shows.)
- disease progression, on scikit-learn's bundled diabetes data (no download), a few
  regressors registered as ``diabetes-progression``.
Plus one user per role with the passwords printed below. Running it again changes nothing.
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ..registry import models as registry
from ..workspace import Workspace, connect, operator_workspace
from .datasets import (
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    TARGET,
    make_credit_applicants,
    train_test_split_frame,
)

#: One account per role. Demo only: change them before anyone else can reach the store.
DEMO_USERS = [
    ("dana", "dana-demo-pw", "data_scientist"),
    ("riley", "riley-demo-pw", "reviewer"),
    ("casey", "casey-demo-pw", "compliance_officer"),
    ("lee", "lee-demo-pw", "lead"),
    ("ada", "ada-demo-pw", "admin"),
]
CREDIT_EXPERIMENT = "credit-risk"
CREDIT_MODEL = "credit-default"
DIABETES_EXPERIMENT = "diabetes-progression"
DIABETES_MODEL = "diabetes-progression"

SWEEPS = {
    "logistic_regression": [dict(C=c, class_weight=w) for c, w in itertools.product([0.01, 0.1, 1.0, 10.0], [None, "balanced"])],
    "decision_tree": [dict(max_depth=d, min_samples_leaf=m) for d, m in [(3, 50), (5, 50), (8, 20), (12, 10), (16, 5)]],
    "random_forest": [dict(n_estimators=n, max_depth=d) for n, d in itertools.product([40, 80], [6, 10, 14, None])],
    "hist_gradient_boosting": [dict(learning_rate=lr, max_depth=d)
                               for lr, d in itertools.product([0.05, 0.1, 0.2], [3, 5, None])],
}


def _estimator(family: str, params: dict):
    if family == "logistic_regression":
        return LogisticRegression(max_iter=500, **params)
    if family == "decision_tree":
        return DecisionTreeClassifier(random_state=0, **params)
    if family == "random_forest":
        return RandomForestClassifier(random_state=0, n_jobs=2, min_samples_leaf=5, **params)
    return HistGradientBoostingClassifier(random_state=0, max_iter=150, early_stopping=True, validation_fraction=0.15,
                                          scoring="loss", **params)


def _pipeline(family: str, params: dict) -> Pipeline:
    scale = family == "logistic_regression"  # trees do not need scaled inputs
    pre = ColumnTransformer([
        ("num", StandardScaler() if scale else "passthrough", FEATURES_NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), FEATURES_CATEGORICAL),
    ])
    return Pipeline([("prep", pre), ("model", _estimator(family, params))])


def _classification_metrics(y, proba) -> dict:
    pred = (proba >= 0.5).astype(int)
    return {"roc_auc": roc_auc_score(y, proba), "accuracy": accuracy_score(y, pred),
            "f1": f1_score(y, pred, zero_division=0), "precision": precision_score(y, pred, zero_division=0),
            "recall": recall_score(y, pred, zero_division=0), "log_loss": log_loss(y, proba)}


def _already_seeded(ws: Workspace) -> bool:
    exps = ws.experiments()
    names = set(exps["name"].to_list()) if not exps.is_empty() else set()
    return CREDIT_EXPERIMENT in names and DIABETES_EXPERIMENT in names and not ws.model_versions().is_empty()


def _seed_credit(ws: Workspace, tick) -> None:
    raw = make_credit_applicants(20_000, month="2026-01", seed=7)
    later = make_credit_applicants(5_000, month="2026-02", drifted=True, seed=7)
    train, test = train_test_split_frame(raw, test_size=0.25, seed=7)
    cols = FEATURES_NUMERIC + FEATURES_CATEGORICAL  # never the sensitive attributes or the id
    X_train, y_train = train.select(cols).to_pandas(), train[TARGET].to_numpy()
    X_test, y_test = test.select(cols).to_pandas(), test[TARGET].to_numpy()
    best: dict[str, tuple[float, object, str]] = {}
    for family, grid in SWEEPS.items():
        with ws.start_run(CREDIT_EXPERIMENT, name=f"{family}-sweep", tags={"family": family, "kind": "sweep"}) as parent:
            # Marks confirmed once, on the source (the splits below inherit them). The later month
            # is left with the detector's proposals, for a person to confirm on the run page.
            marks = None if best else {"applicant_id": "identifying", "sex": "sensitive", "age_band": "sensitive",
                                       "age": "sensitive"}
            raw_ref = parent.log_dataset(raw, "applicants-2026-01", role="source",
                                         source="synthetic: make_credit_applicants(seed=7)", marks=marks)
            # The later month, drifted: what drift and monitoring compare against the training month.
            parent.log_dataset(later, "applicants-2026-02", role="current",
                               source="synthetic: make_credit_applicants(month='2026-02', drifted=True, seed=7)")
            aucs = []
            for i, params in enumerate(grid):
                with ws.start_run(CREDIT_EXPERIMENT, name=f"{family}-{i:02d}", parent=parent,
                                  tags={"family": family, "data_month": "2026-01"}) as run:
                    run.log_params({"family": family, **{k: str(v) for k, v in params.items()}})
                    run.log_dataset(train, "applicants-2026-01-train", role="train", parents=[raw_ref])
                    run.log_dataset(test, "applicants-2026-01-test", role="test", parents=[raw_ref])
                    model = _pipeline(family, params).fit(X_train, y_train)
                    est = model.named_steps["model"]
                    if family == "hist_gradient_boosting":  # a learning curve, one point per iteration
                        for step, (tr, va) in enumerate(zip(-est.train_score_, -est.validation_score_)):
                            run.log_metrics({"train_log_loss": float(tr), "val_log_loss": float(va)}, step=step)
                    metrics = _classification_metrics(y_test, model.predict_proba(X_test)[:, 1])
                    drift_proba = model.predict_proba(later.select(cols).to_pandas())[:, 1]
                    metrics["roc_auc_2026_02"] = roc_auc_score(later[TARGET].to_numpy(), drift_proba)
                    run.log_metrics(metrics)
                    aucs.append(metrics["roc_auc"])
                    if metrics["roc_auc"] > best.get(family, (-1,))[0]:
                        best[family] = (metrics["roc_auc"], model, run)
                tick()
            parent.log_metrics({"best_roc_auc": max(aucs), "n_candidates": len(aucs)})
    meta = dict(owner_team="Retail Credit Risk", use_case="Probability of default for consumer loan applications",
                risk_tier="high", description="Scores loan applicants; decisions above the cut-off are referred to an underwriter.")
    order = ["logistic_regression", "decision_tree", "random_forest", "hist_gradient_boosting"]
    versions = {}
    for family in order:
        _, model, run = best[family]
        versions[family] = ws.register_model(model, CREDIT_MODEL, run_id=run.run_id, **meta).version
    # Stages a real registry would show: the old baseline archived, a challenger in staging,
    # the champion in production. Production normally comes only from an approved request;
    # the demo seeds it through the same single transition function, marked as a seed (the
    # alias "champion" follows Production; "challenger" comes with the canary's rollout).
    ws.set_stage(CREDIT_MODEL, versions["logistic_regression"], "Archived", reason="baseline superseded")
    ws.set_stage(CREDIT_MODEL, versions["random_forest"], "Staging", reason="challenger")
    _seed_production(ws, CREDIT_MODEL, versions["hist_gradient_boosting"])
    versions["form_scorecard"] = _seed_form_scorecard(ws, train, test, meta)
    _seed_monitoring(ws, (CREDIT_MODEL, versions["hist_gradient_boosting"]), train.select(cols), later)
    # Evidence for every version on the held-out applicants: SHAP explanations, and fairness
    # by sex with approval (no predicted default) as the favourable outcome.
    for family in [*order, "form_scorecard"]:
        ref = (CREDIT_MODEL, versions[family])
        inputs = FORM_FEATURES if family == "form_scorecard" else cols
        ws.explain(ref, test.select(["applicant_id", *inputs]), row_id="applicant_id", max_rows=1000)
        ws.fairness(ref, test, y_test, sensitive_features=["sex"], favorable_label=0, n_bootstrap=100)


#: What an applicant writes on the form, without credit-bureau data.
FORM_FEATURES = ["postcode_area", "housing", "loan_purpose", "employment_type"]


def _seed_form_scorecard(ws: Workspace, train: pl.DataFrame, test: pl.DataFrame, meta: dict) -> int:
    """A cheap scorecard from the form alone, class-balanced: it declines by postcode."""
    with ws.start_run(CREDIT_EXPERIMENT, name="form-scorecard", tags={"family": "scorecard", "data_month": "2026-01"}) as run:
        run.log_params({"family": "scorecard", "features": ",".join(FORM_FEATURES), "class_weight": "balanced"})
        model = Pipeline([("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), FORM_FEATURES)])),
                          ("model", LogisticRegression(max_iter=500, class_weight="balanced"))])
        model.fit(train.select(FORM_FEATURES).to_pandas(), train[TARGET].to_numpy())
        proba = model.predict_proba(test.select(FORM_FEATURES).to_pandas())[:, 1]
        run.log_metrics(_classification_metrics(test[TARGET].to_numpy(), proba))
        return ws.register_model(model, CREDIT_MODEL, run_id=run.run_id, **meta).version


#: Months of logged production traffic; the last one drifts, a little more each week.
MONITOR_MONTHS = ["2026-03", "2026-04", "2026-05", "2026-06"]
MONITOR_PER_MONTH = 2_800


def _seed_monitoring(ws: Workspace, version: tuple[str, int], train_features: pl.DataFrame,
                     drifted_month: pl.DataFrame) -> None:
    """Four months of the champion's predictions, labels for most of them, one alert.

    Labels arrive for 80 % of the requests, except the last two weeks (not due yet). The last
    month's applicants come more and more from the drifted population: only its final week
    moves enough of the features to breach the monitor policy, which records the alert.
    """
    model = ws.load_model(*version)
    features = train_features.columns
    # the reference: the training features and the model's scores on them (prediction drift)
    ws.log_reference(version, train_features.with_columns(
        pl.Series("prediction", model.predict_proba(train_features.to_pandas())[:, 1])))
    # what the lead set for this high-risk model (a data scientist may not)
    connect(ws.store.location, user="lee").set_monitor_policy(
        version[0], max_drift_share=0.3, max_error_rate=0.02, min_auc=0.65, max_latency_p95_ms=80.0)
    _log_traffic(ws, version, model, features, range(17), MONITOR_PER_MONTH // 4, seed=21)
    ws.monitor(version, window="1w")  # records the alert of the drifted week
    ws.drift(train_features, drifted_month.select(features), model_version=version)


#: The last month drifts, a little more each week (share of applicants from the drifted population).
DRIFT_BY_WEEK = {13: 0.05, 14: 0.15, 15: 0.3, 16: 1.0}


def _log_traffic(ws: Workspace, version: tuple[str, int], model, features: list[str], weeks, per_week: int,
                 seed: int) -> None:
    """Weekly batches of scored applicants from 2 March 2026; labels for all but the last two weeks."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday: weekly windows line up
    logged = []
    for week in weeks:
        share = DRIFT_BY_WEEK.get(week, 0.0)
        base = make_credit_applicants(per_week, month=MONITOR_MONTHS[min(week // 4, 3)], seed=seed * 1000 + week)
        shifted = make_credit_applicants(per_week, month="2026-06", drifted=True, seed=seed * 1000 + 500 + week)
        take = rng.random(per_week) < share
        batch = pl.concat([base.filter(pl.Series(~take)), shifted.filter(pl.Series(take))])
        proba = model.predict_proba(batch.select(features).to_pandas())[:, 1]
        stamps = [start + timedelta(days=7 * week, seconds=int(s)) for s in np.sort(rng.uniform(0, 7 * 86_400, batch.height))]
        frame = batch.select(features).with_columns(
            pl.Series("timestamp", stamps),
            pl.Series("request_id", [f"v{version[1]}-w{week:02d}-{i:04d}" for i in range(batch.height)]),
            pl.Series("prediction", proba), pl.Series("latency_ms", rng.gamma(2.0, 9.0, batch.height)),
            pl.Series("error", rng.random(batch.height) < 0.004))
        ws.log_predictions(version, frame)
        if week < 15:  # outcomes known for most applications older than two weeks
            known = rng.random(batch.height) < 0.8
            logged.append(pl.DataFrame({"request_id": frame["request_id"].filter(pl.Series(known)),
                                        "label": batch[TARGET].filter(pl.Series(known))}))
    ws.log_labels(version, pl.concat(logged))


def _seed_canary(dana: Workspace, lee: Workspace, version: tuple[str, int]) -> None:
    """v2 in Staging serves a quarter of the traffic for the last six weeks, monitored beside the champion."""
    dana.set_stage(*version, "Staging", reason="canary beside the champion")
    lee.set_rollout(version[0], version[1], 0.25)
    model = dana.load_model(*version)
    train, _ = _drift_frames()
    dana.log_reference(version, train.with_columns(pl.Series("prediction", model.predict_proba(train.to_pandas())[:, 1])))
    _log_traffic(dana, version, model, train.columns, range(11, 17), 175, seed=22)
def _seed_governance(store) -> None:
    """A promotion queue in every state: approved, rejected, pending, stale, and one rollback."""
    dana, lee, casey, ada = (connect(store, user=u) for u in ("dana", "lee", "casey", "ada"))
    ada.set_gate_policy("high", required_evidence=["explanation", "fairness", "drift"], min_metrics={"roc_auc": 0.7},
                        max_demographic_parity_difference=0.1, max_equalized_odds_difference=0.1, max_drift_share=0.3)
    # approved: the best diabetes model to Production (medium risk: one lead)
    r = dana.request_promotion((DIABETES_MODEL, 1), "Production", "Lowest MAE on the held-out patients.")
    lee.decide(r.id, True, "MAE and explanation reviewed.")
    # rejected: the form-only scorecard fails the fairness screen
    r = dana.request_promotion((CREDIT_MODEL, 5), "Staging", "Cheap to run: needs only the application form.")
    lee.decide(r.id, False, "Fails the four-fifths screen for women: it leans on postcode_area. Retrain without it.")
    # approved past a failing gate by a lead's override and a compliance officer, then rolled back
    dana.drift(*_drift_frames(), model_version=(CREDIT_MODEL, 3))
    r = dana.request_promotion((CREDIT_MODEL, 3), "Production", "The random forest challenger beats the champion on AUC.")
    lee.decide(r.id, True, "Approve.", override_reason="February drift is seasonal; re-checked weekly by the monitor.")
    casey.decide(r.id, True, "Validation pack reviewed; fairness by sex passes.")
    lee.rollback(CREDIT_MODEL, "v3 declined far more young applicants in its first week; back to v4 while we look.")
    # a canary, then a stale request: evidence recomputed after the request
    _seed_canary(dana, lee, (CREDIT_MODEL, 2))
    r = dana.request_promotion((CREDIT_MODEL, 2), "Production", "A simple tree the underwriters can read; the canary holds up.")
    casey.comment(r.id, "Please add the drift report before anyone signs.")
    dana.drift(*_drift_frames(), model_version=(CREDIT_MODEL, 2))
    # pending, gates passing, awaiting one lead: the next diabetes version to Staging
    dana.request_promotion((DIABETES_MODEL, 2), "Staging", "Second-best MAE; a spare for the canary.")


@functools.lru_cache(maxsize=1)
def _drift_frames():
    raw = make_credit_applicants(20_000, month="2026-01", seed=7)
    later = make_credit_applicants(5_000, month="2026-02", drifted=True, seed=7)
    cols = FEATURES_NUMERIC + FEATURES_CATEGORICAL
    return raw.select(cols), later.select(cols)


def _seed_production(ws: Workspace, name: str, version: int) -> None:
    ws.ctx.call(lambda conn: registry.transition_stage(conn, ws.user, ws.role, name, version, "Production",
                                                    approval="demo-seed", reason="seeded by workbench demo"))


def _seed_diabetes(ws: Workspace, tick) -> None:
    data = load_diabetes(as_frame=True)
    frame = pl.from_pandas(data.frame)
    rng = np.random.default_rng(11)
    test_mask = rng.random(frame.height) < 0.25
    train, test = frame.filter(~pl.Series(test_mask)), frame.filter(pl.Series(test_mask))
    features = list(data.feature_names)
    candidates = [("ridge", Ridge(alpha=1.0)), ("ridge", Ridge(alpha=10.0)),
                  ("random_forest", RandomForestRegressor(n_estimators=60, max_depth=6, random_state=0, n_jobs=2)),
                  ("random_forest", RandomForestRegressor(n_estimators=60, max_depth=None, random_state=0, n_jobs=2))]
    made = []
    for i, (family, model) in enumerate(candidates):
        with ws.start_run(DIABETES_EXPERIMENT, name=f"{family}-{i}", tags={"family": family}) as run:
            run.log_params({"family": family, **{k: str(v) for k, v in model.get_params().items()
                                                 if k in ("alpha", "n_estimators", "max_depth")}})
            src = run.log_dataset(frame, "diabetes", role="source", source="sklearn.datasets.load_diabetes")
            run.log_dataset(train, "diabetes-train", role="train", parents=[src])
            run.log_dataset(test, "diabetes-test", role="test", parents=[src])
            model.fit(train.select(features).to_pandas(), train["target"].to_numpy())
            pred = model.predict(test.select(features).to_pandas())
            y = test["target"].to_numpy()
            mae = mean_absolute_error(y, pred)
            run.log_metrics({"mae": mae, "r2": r2_score(y, pred), "rmse": float(np.sqrt(np.mean((y - pred) ** 2)))})
            made.append((mae, model, run.run_id))
        tick()
    made.sort(key=lambda t: t[0])
    meta = dict(owner_team="Clinical Analytics", use_case="Disease progression estimate one year after baseline",
                risk_tier="medium", description="Regression on scikit-learn's bundled diabetes data.")
    v_best = ws.register_model(made[0][1], DIABETES_MODEL, run_id=made[0][2], **meta).version
    v_next = ws.register_model(made[1][1], DIABETES_MODEL, run_id=made[1][2], **meta).version
    ws.set_stage(DIABETES_MODEL, v_best, "Staging", reason="best MAE")
    for version in (v_best, v_next):  # the medium tier's gates ask for an explanation
        ws.explain((DIABETES_MODEL, version), test.select(features), max_rows=200)


def seed(store=None, *, progress: bool = True) -> dict:
    """Seed the demo into ``store``; returns a summary. Idempotent.

    The demo users are added where missing; the runs, models, evidence and requests only
    when the store does not hold the demo's experiments and model versions yet.

    Parameters
    ----------
    store : str or path, optional
        The store; default as :func:`workbench.connect`.
    progress : bool
        Show a progress bar on the terminal (never when ``$CI`` is set).

    Returns
    -------
    dict
        ``store`` (as displayed), counts of ``runs``, ``experiments`` and ``versions``,
        ``users`` (:data:`DEMO_USERS`) and ``already_seeded``.
    """
    warnings.filterwarnings("ignore", category=UserWarning)
    op = operator_workspace(store)
    existing = set(op.users()["name"].to_list())
    for name, password, role in DEMO_USERS:
        if name not in existing:
            op.add_user(name, role, password)
    ws = connect(store, user="dana")
    already = _already_seeded(ws)
    if not already:
        total = sum(len(g) for g in SWEEPS.values()) + 4  # + the diabetes runs
        bar = _progress(total, progress)
        try:
            _seed_credit(ws, bar.update)
            _seed_diabetes(ws, bar.update)
            _seed_governance(ws.store.location)
        finally:
            bar.close()
    ws.flush()
    counts = ws.counts()
    return {"store": ws.store.display, "runs": counts["runs"], "experiments": counts["experiments"],
            "versions": counts["versions"], "users": DEMO_USERS, "already_seeded": already}


class _progress:
    """A terminal progress bar (rich, which typer brings) that is silent when off."""

    def __init__(self, total: int, show: bool) -> None:
        self._p = None
        if show and os.environ.get("CI") is None:
            from rich.progress import Progress

            self._p = Progress()
            self._p.start()
            self._task = self._p.add_task("Training demo models", total=total)

    def update(self) -> None:
        if self._p is not None:
            self._p.advance(self._task)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
