"""Explanations: stored SHAP values of a model version, globally and for one row."""

import polars as pl
import streamlit as st

from workbench.protection import column_marks
from workbench.ui import evidence_charts as charts
from workbench.ui import widgets as ui

ws = ui.require_page("explanations")
st.title("Explanations")
with ui.shown_errors():
    stored = ws.evidence().filter(pl.col("kind") == "explanation")
    if stored.is_empty():
        ui.empty("No explanation stored yet: compute one from a notebook with `ws.explain(version, X)`.")
        st.stop()
    labels = [f"{n} v{v}" for n, v in stored.select(["name", "version"]).iter_rows()]
    chosen = st.selectbox("Model version", labels)
    row = stored.row(labels.index(chosen), named=True)
    summary, values = ws.evidence_detail(row["id"])
    add = summary["additivity"]
    st.caption(f"{summary['explainer']}, output: {summary['output']}, feature space: {summary['feature_space']}; "
               f"{summary['sampled']['rows_explained']:,} of {summary['sampled']['rows_total']:,} rows explained; "
               f"additivity {'holds' if add['passed'] else 'FAILS'} (max error {add['max_abs_error']:.2g}, "
               f"tolerance {add['tolerance']:.2g}). Computed by {row['created_by']} at {row['created_at']:%Y-%m-%d %H:%M}.")
    if summary.get("note"):
        st.info(ui.plain(summary["note"]), icon=":material/info:")
    features = [r["feature"] for r in summary["global_importance"]]
    left, right = st.columns(2)
    left.plotly_chart(charts.importance_bar(summary["global_importance"]), width="stretch")
    right.plotly_chart(charts.beeswarm(values, features[:12]), width="stretch")

    st.subheader("Dependence")
    c1, c2 = st.columns(2)
    feature = c1.selectbox("Feature", features)
    color_by = c2.selectbox("Coloured by", ["(none)", *[f for f in features if f != feature]])
    st.plotly_chart(charts.dependence(values, feature, None if color_by == "(none)" else color_by), width="stretch")

    st.subheader("One row")
    ids = values["row_id"].cast(pl.String).to_list()
    wanted = st.text_input("Row id", value=ids[0], help="The id of an explained row.")
    if wanted not in ids:
        st.error(ui.plain(f"Row id {wanted!r} was not explained in this version (ids like {ids[0]!r})."))
    else:
        masked = set(summary.get("masked", column_marks.propose(features)))  # never shown per row
        one = values.row(ids.index(wanted), named=True)
        st.plotly_chart(charts.waterfall(one, features, one["base_value"], masked), width="stretch")

    others = [lab for lab in labels if lab != chosen]
    if others:
        st.subheader("Against another version")
        other = st.selectbox("Compare with", others)
        other_summary = ws.evidence_summary(stored.row(labels.index(other), named=True)["id"])
        st.plotly_chart(charts.importance_pair(summary["global_importance"], other_summary["global_importance"],
                                               chosen, other), width="stretch")
