"""Drift & monitoring: a version's logged predictions per window, drift per feature, alerts."""

import polars as pl
import streamlit as st

from workbench.people import roles
from workbench.ui import monitor_charts as charts
from workbench.ui import widgets as ui

ws = ui.require_page("drift")
st.title("Drift & monitoring")


@st.cache_data(ttl=300, max_entries=16, show_spinner="Reading the prediction logs ...")
def _monitor(_ws, store: str, name: str, version: int, window: str, last_batch: int):
    # keyed by the newest batch: new logs or labels give a fresh result
    return _ws.monitor((name, version), window, alerts=False)


with ui.shown_errors():
    monitored = ws.monitored_versions()
    if monitored.is_empty():
        ui.empty("No predictions logged yet: log them from a service or notebook with "
                 "`ws.log_predictions(version, frame)`.")
        st.stop()
    labels = [f"{n} v{v} ({stage})" for n, v, stage in monitored.select(["name", "version", "stage"]).iter_rows()]
    production = [i for i, stage in enumerate(monitored["stage"]) if stage == "Production"]
    left, right = st.columns([3, 1])
    chosen = left.selectbox("Model version", labels, index=production[0] if production else 0,
                            help="Versions with logged predictions; Production first chosen.")
    window = right.radio("Window", ["1w", "1d", "1h"], horizontal=True, help="Weeks start on Monday, days at 00:00 UTC.")
    row = monitored.row(labels.index(chosen), named=True)
    report = _monitor(ws, ws.store.location, row["name"], row["version"], window, row["last_batch"])
    w = report.windows
    st.caption(f"{row['predictions']:,} predictions from {row['first_prediction']:%Y-%m-%d} to "
               f"{row['last_prediction']:%Y-%m-%d}; {w['labelled'].sum():,} labelled; {w.height} windows of {window}; "
               f"{report.breaching.height} breach the monitor policy.")
    for note in report.notes[:3]:
        st.info(ui.plain(note), icon=":material/info:")
    st.plotly_chart(charts.timelines(w, report.task, report.thresholds), width="stretch")

    rollout = ws.rollout(row["name"])
    pair = (rollout["champion_version"], rollout["challenger_version"]) if rollout else ()
    if row["version"] in pair:
        other = monitored.filter((pl.col("name") == row["name"]) & (pl.col("version") == sum(pair) - row["version"]))
        if other.height:
            st.subheader(f"Canary: v{pair[0]} (champion) beside v{pair[1]} (challenger, "
                         f"{rollout['traffic_share']:.0%} of traffic)")
            reports = {v: report if v == row["version"] else
                       _monitor(ws, ws.store.location, row["name"], v, window, other["last_batch"][0]) for v in pair}
            st.plotly_chart(charts.side_by_side({f"v{v}": r.windows for v, r in reports.items()}, report.task),
                            width="stretch")

    if report.reference and not report.drift_by_window.is_empty():
        st.subheader("Drift per feature")
        starts = w.filter(pl.col("drift_share").is_not_null())["window_start"].to_list()
        worst = max(starts, key=lambda s: w.filter(pl.col("window_start") == s)["drift_share"][0])
        start = st.selectbox("Window starting", starts, index=starts.index(worst),
                             format_func=lambda s: f"{s:%Y-%m-%d %H:%M}", help="Preselected: the most drifted window.")
        table = (report.drift_by_window.filter(pl.col("window_start") == start)
                 .sort("severity", descending=True, nulls_last=True)
                 .select(["column", "kind", "stattest", "statistic", "threshold", "drift_detected", "severity", "psi",
                          "psi_band"]))
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"severity": st.column_config.NumberColumn(help="1 at the threshold; larger is worse")})
        feature = st.selectbox("Distribution of", table["column"].to_list())
        kind = table.filter(pl.col("column") == feature)["kind"][0]
        if report.reference_data is not None and feature in report.reference_data.columns:
            st.plotly_chart(charts.overlay(report.reference_data[feature], report.window_values(feature, start),
                                           feature, kind), width="stretch")

    st.subheader("Alerts")
    alerts = ws.alerts(row["name"]).filter(pl.col("version") == row["version"])
    if alerts.is_empty():
        ui.empty("No alerts recorded for this version.")
    else:
        # the retraining command's output only for the roles the service gives it to
        output = ["output"] if roles.allowed(ws.role, "view_command_output") else []
        st.dataframe(alerts.select(["window_start", "metric", "value", "threshold", "rule", "command", "command_status",
                                    "exit_code", *output, "created_by", "created_at"]), hide_index=True, width="stretch")
