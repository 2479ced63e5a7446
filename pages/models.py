"""Models: the registry, with owners, risk tiers, versions, stages, aliases and evidence."""

import streamlit as st

from workbench import ui

ws = ui.require_page("models")
st.title("Models")
with ui.shown_errors():
    models = ws.models()
    if models.is_empty():
        ui.empty("No registered models yet: call `run.register_model(model, name)` inside a run.")
        st.stop()
    st.dataframe(models.select(["name", "risk_tier", "owner_team", "use_case", "n_versions", "production_version",
                                "description"]), hide_index=True, width="stretch")
    names = models["name"].to_list()
    chosen = ui.query_param("model")
    name = st.selectbox("Model", names, index=names.index(chosen) if chosen in names else 0)
    st.query_params["model"] = name
    versions = ws.model_versions(name)
    st.dataframe(versions.select(["version", "stage", "aliases", "run_name", "model_class", "sha256", "created_by",
                                  "created_at"]), hide_index=True, width="stretch",
                 column_config={"sha256": st.column_config.TextColumn("file sha256", help="checked on every load")})
    st.caption("Evidence per version (SHAP explanations, fairness and drift reports) will be listed here "
               "once the workbench computes it; this version of the workbench does not yet.")
