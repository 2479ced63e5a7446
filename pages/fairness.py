"""Fairness: stored per-group reports of a model version, their verdict and its policy."""

import polars as pl
import streamlit as st

from workbench.protection import small_groups
from workbench.ui import evidence_charts as charts
from workbench.ui import widgets as ui

ws = ui.require_page("fairness")
st.title("Fairness")
with ui.shown_errors():
    stored = ws.evidence().filter(pl.col("kind") == "fairness")
    if stored.is_empty():
        ui.empty("No fairness report stored yet: compute one from a notebook with "
                 "`ws.fairness(version, X, y, sensitive_features=['sex', 'age_band'])`.")
        st.stop()
    labels = [f"{n} v{v}" for n, v in stored.select(["name", "version"]).iter_rows()]
    chosen = st.selectbox("Model version", labels)
    row = stored.row(labels.index(chosen), named=True)
    summary, by_group = ws.evidence_detail(row["id"])
    # protected attributes only in aggregate: groups under the minimum size are pooled
    by_group = small_groups.pool(by_group, small_groups.min_size(summary))
    verdict = summary.get("verdict")
    # A verdict is a finding, not an error of the page: a badge, with its reasons.
    st.badge(f"Verdict: {verdict or 'not judged'}", color={"pass": "green", "fail": "red"}.get(verdict, "orange"))
    for reason in summary.get("reasons") or []:
        st.caption(f"- {ui.plain(reason)}")  # a reason can name a group: data, not markup
    policy = ws.evidence_policy(row["id"])
    if policy:
        st.caption("Judged by the policy for risk tier " + f"{policy.pop('risk_tier')}: "
                   + ", ".join(f"{k.replace('_', ' ')} = {v}" for k, v in policy.items()))
    cols = st.columns(4)
    for col, key in zip(cols, ["demographic_parity_difference", "demographic_parity_ratio",
                               "equalized_odds_difference", "equal_opportunity_difference"]):
        value = summary.get(key)
        col.metric(key.replace("_", " "), "undefined" if value is None else f"{value:.3f}")
    features = by_group["feature"].unique(maintain_order=True).to_list()
    feature = st.radio("Groups by", features, horizontal=True, format_func=ui.plain,  # options are markdown
                       help="The last is the intersection of two features.")
    rows = by_group.filter(pl.col("feature") == feature)
    metric = st.selectbox("Metric", [m for m in ("selection_rate", "tpr", "fpr", "precision", "accuracy",
                                                  "impact_ratio", "mean_prediction", "mae") if m in rows.columns])
    line = 0.8 if metric == "impact_ratio" else None
    st.plotly_chart(charts.group_bars(by_group, metric, feature, line), width="stretch")
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(f"Groups of fewer than {small_groups.min_size(summary)} people are shown pooled, never one by one; "
               "a pool still under that size shows its size only.")
    history = ws.evidence_history(row["name"], "fairness")
    if history.height > 1:
        key = st.selectbox("Trend of", [k for k in ("demographic_parity_ratio", "equalized_odds_difference")
                                        if k in history.columns])
        points = history.select(["version", pl.col(key).alias("value"), "verdict"])
        st.plotly_chart(charts.trend(points, key), width="stretch")
