"""Models: the registry, with versions, stages and aliases."""

import streamlit as st

from workbench import ui

st.title("Models")
with ui.shown_errors():
    ws = ui.workspace()
    models = ws.models()
    if models.is_empty():
        ui.empty("No registered models yet: call `run.register_model(model, name)` inside a run.")
        st.stop()
    st.dataframe(models.drop(["created_at"]), hide_index=True, width="stretch")
    name = st.selectbox("Model", models["name"].to_list())
    versions = ws.model_versions(name)
    st.dataframe(versions.select(["version", "stage", "aliases", "run_name", "model_class", "created_by", "created_at"]),
                 hide_index=True, width="stretch")
