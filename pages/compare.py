"""Compare runs: params side by side, overlaid curves, parallel coordinates, scatter, best run."""

import polars as pl
import streamlit as st

from workbench.tracking import compare
from workbench.ui import compare_charts
from workbench.ui import widgets as ui

ws = ui.require_page("compare")
st.title("Compare runs")

with ui.shown_errors():
    ids = [i for i in (ui.query_param("runs") or "").split(",") if i]
    if len(ids) < 2:
        ui.empty("Pick 2 to 50 runs in Experiments (select rows in the runs table), then choose Compare.")
        st.stop()
    if len(ids) > compare.MAX_COMPARE:
        st.error(f"{len(ids)} runs in the link; compare at most {compare.MAX_COMPARE}.")
        st.stop()
    frame = ws.comparison_frame(ids)  # unknown ids raise NotFoundError: shown as a message
    st.caption(f"{len(ids)} runs: " + ", ".join(ui.plain(n) for n in frame["run_name"].to_list()))

    st.subheader("Best run per metric")
    best = ws.best_runs(ids)
    st.dataframe(best.select(["key", "goal", "label", "value", "n_runs"]).rename({"key": "metric", "label": "best run"}),
                 hide_index=True, width="stretch")

    st.subheader("Params")
    params = ws.params_table(ids)
    only_diff = st.toggle("Only params that differ", value=False)
    shown = params.filter(pl.col("differs")) if only_diff else params
    st.dataframe(shown.to_pandas().style.apply(
        lambda row: ["background-color: #fff3cd" if row["differs"] else "" for _ in row], axis=1),
        hide_index=True, width="stretch")

    st.subheader("Latest metrics")
    st.dataframe(ws.metrics_table(ids), hide_index=True, width="stretch")

    curves = ws.metric_curves(ids)
    keys = sorted(curves.group_by("key").agg(pl.len().alias("n")).filter(pl.col("n") > len(ids))["key"].to_list())
    if keys:
        st.subheader("Metric curves")
        key = st.selectbox("Metric", keys)
        st.plotly_chart(compare_charts.curves_figure(curves.filter(pl.col("key") == key)), width="stretch")

    numeric = [c for c, t in frame.schema.items() if t.is_numeric()]
    if len(numeric) >= 2:
        st.subheader("Parallel coordinates")
        st.plotly_chart(compare_charts.parallel_coordinates(frame), width="stretch")
        st.subheader("Scatter")
        c1, c2 = st.columns(2)
        x = c1.selectbox("x", numeric, index=0)
        y = c2.selectbox("y", numeric, index=min(1, len(numeric) - 1))
        st.plotly_chart(compare_charts.scatter_figure(frame, x, y), width="stretch")
