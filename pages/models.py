"""Models: the registry, with owners, risk tiers, versions, stages, aliases and evidence."""

import streamlit as st

from workbench.people import roles
from workbench.reports import documents as reports
from workbench.ui import widgets as ui

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
    ui.from_url("models_model", "model", default=names[0], options=names)
    name = st.selectbox("Model", names, key="models_model")
    ui.keep_in_url("models_model", "model", name)
    versions = ws.evidence_verdicts(name)
    st.dataframe(versions.select(["version", "stage", "aliases", "run_name", "explanation", "fairness", "drift",
                                  "model_class", "sha256", "created_by", "created_at"]),
                 hide_index=True, width="stretch",
                 column_config={"sha256": st.column_config.TextColumn("file sha256", help="checked on every load")})
    if ws.evidence(name).is_empty():
        ui.empty("No evidence stored for this model yet: compute it from a notebook with "
                 "`ws.fairness(version, X, y, sensitive_features=[...])`.")

    # What the card says in words: written by the model's owners, read by everyone, audited.
    with st.expander("Model card text", icon=":material/edit_note:"):
        current = ws.card_text(name)
        if roles.allowed(ws.role, "register_models"):
            with st.form("card_text"):
                texts = {f: st.text_area(f.replace("_", " ").capitalize(), value=current[f] or "")
                         for f in reports.TEXT_FIELDS}
                if st.form_submit_button("Save", icon=":material/save:"):
                    for field, text in texts.items():
                        if (text.strip() or None) != current[field]:
                            ws.set_card_text(name, field, text)
                    st.success("Saved; the next model card shows it.")
        else:
            for field in reports.TEXT_FIELDS:
                st.markdown(f"**{field.replace('_', ' ').capitalize()}**: {ui.plain(current[field] or 'not written yet')}")
