"""Audit trail: the newest events, and a check of the hash chain."""

import streamlit as st

from workbench import ui

ws = ui.require_page("audit")
st.title("Audit trail")
with ui.shown_errors():
    if st.button("Verify the chain", icon=":material/verified_user:"):
        check = ws.verify_audit()
        if check.ok:
            st.success(f"Chain intact: {check.n_events} events, head digest `{check.head_hash}`.")
        else:
            st.error(f"Chain broken at event {check.first_broken_seq}: {check.reason}")
    limit = st.select_slider("Events shown", [100, 500, 2000, 10000], value=500)
    events = ws.audit_events(limit=limit)
    if events.is_empty():
        ui.empty("No events yet: every write in the workbench appends one.")
    else:
        st.dataframe(events.select(["seq", "ts", "actor", "role", "action", "entity_type", "entity_id", "payload"]),
                     hide_index=True, width="stretch")
