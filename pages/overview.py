"""Home: what the store holds and what happened last."""

import streamlit as st

from workbench import ui

st.title("Workbench")
with ui.shown_errors():
    ws = ui.workspace()
    st.caption(f"Store: `{ws.store.path}`")
    counts = ws.counts()
    cols = st.columns(5)
    for col, key in zip(cols, ["experiments", "runs", "models", "versions", "users"]):
        col.metric(key.capitalize(), counts[key])
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
