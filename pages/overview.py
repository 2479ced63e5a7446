"""Home: what the store holds, what happened last, and what awaits the signed-in role."""

import polars as pl
import streamlit as st

from workbench.people import roles
from workbench.ui import widgets as ui

ws = ui.require_page("home")
signed = ui.signed_in()
st.title("Workbench")
with ui.shown_errors():
    st.caption(f"Store: `{ws.store.display}`")
    counts = ws.counts()
    cols = st.columns(5)
    for col, key in zip(cols, ["experiments", "runs", "models", "versions", "users"]):
        col.metric(key.capitalize(), counts[key])
    st.subheader("For you")
    if roles.allowed(signed.role, "log_runs"):
        mine = ws.search_runs().filter(pl.col("user_name") == signed.user)
        failed = mine.filter(pl.col("status") == "FAILED").height
        st.write(f"You have {mine.height} runs" + (f", {failed} of them failed." if failed else "."))
    staging = ws.model_versions().filter(pl.col("stage") == "Staging")
    if roles.allowed(signed.role, "review"):
        if staging.is_empty():
            st.write("No model version is in Staging.")
        else:
            st.write(f"{staging.height} model versions are in Staging, awaiting review:")
            st.dataframe(staging.select(["name", "version", "run_name", "created_by", "created_at"]), hide_index=True)
    if roles.allowed(signed.role, "manage_users"):
        st.write(f"{counts['users']} accounts. Manage them on the Users page.")
    if counts["runs"] == 0:
        ui.empty("No runs yet. Seed a demo with `workbench demo`, or log runs from a notebook "
                 "(see notebooks/01_track_and_register.ipynb).")
    else:
        st.subheader("Recent runs")
        runs = ws.search_runs(max_results=10)
        st.dataframe(runs.select(["run_name", "experiment", "status", "user_name", "start_time"]),
                     hide_index=True, width="stretch")
    st.subheader("Registered models")
    models = ws.models()
    if models.is_empty():
        ui.empty("No registered models yet: call `run.register_model(model, name)` in a run.")
    else:
        st.dataframe(models.select(["name", "risk_tier", "owner_team", "n_versions", "production_version"]),
                     hide_index=True, width="stretch")
