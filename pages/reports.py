"""Reports: generate a model card, validation pack or audit extract now; schedules; past exports."""

import hashlib
import json

import polars as pl
import streamlit as st

from workbench.reports import documents as reports
from workbench.ui import widgets as ui

ws = ui.require_page("reports")
st.title("Reports")

with ui.shown_errors():
    models = ws.models()
    st.subheader("Generate now")
    c1, c2, c3, c4 = st.columns([2, 3, 1, 1])
    kind = c1.selectbox("Kind", reports.KINDS, format_func=lambda k: k.replace("-", " "))
    names = models["name"].to_list()
    model = c2.selectbox("Model", names if kind != "audit" else ["(all models)", *names])
    model = None if model == "(all models)" else model
    versions = ws.model_versions(model)["version"].to_list() if model else []
    version = c3.selectbox("Version", ["default", *versions], disabled=kind == "audit" or not model,
                           help="Default: the Production version, else the latest.")
    fmt = c4.selectbox("Format", reports.FORMATS)
    if st.button("Generate", type="primary", icon=":material/description:"):
        with st.spinner("Building the report ..."):
            name, data = ws.download_report(kind, model, None if version == "default" or kind == "audit" else int(version), fmt=fmt)
        st.session_state["report_ready"] = (name, data, fmt)
    if "report_ready" in st.session_state:
        name, data, kind_fmt = st.session_state["report_ready"]
        mime = {"html": "text/html", "pdf": "application/pdf", "json": "application/json", "md": "text/markdown"}[kind_fmt]
        st.download_button(f"Download {ui.plain(name)}", data, file_name=name, mime=mime, icon=":material/download:")
        st.caption(f"sha256 `{hashlib.sha256(data).hexdigest()}` (recorded in the audit trail)")

    st.subheader("Schedules")
    scheduled = ws.schedules()
    if scheduled.is_empty():
        ui.empty("No schedules: add one with `workbench schedule add --name ... --cron '0 6 * * MON' ...`.")
    else:
        st.dataframe(scheduled.select(["name", "cron", "kind", "model", "format", "out_dir", "next_due", "last_status",
                                       "last_run_at", "last_path"]), hide_index=True, width="stretch")
        runs = ws.schedule_runs()
        failed = runs.filter(pl.col("status") == "failed")
        if failed.height:
            st.warning(f"{failed.height} scheduled run(s) failed; each is retried at the next run.",
                       icon=":material/error:")
        st.dataframe(runs.head(50), hide_index=True, width="stretch")

    st.subheader("Past exports")
    exports = ws.audit_events(action="report.export", limit=200)
    if exports.is_empty():
        ui.empty("Nothing exported yet.")
    else:
        payload = [json.loads(p) for p in exports["payload"]]
        st.dataframe(pl.DataFrame({"file": exports["entity_id"], "by": exports["actor"], "at": exports["ts"],
                                   "kind": [p["kind"] for p in payload], "format": [p["format"] for p in payload],
                                   "sha256": [p["sha256"] for p in payload]}), hide_index=True, width="stretch")
