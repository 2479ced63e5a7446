"""Audit trail: events filtered by actor, action, entity and time; the chain's integrity; exports."""

import datetime as dt

import streamlit as st

from workbench.people import roles
from workbench.ui import widgets as ui

ws = ui.require_page("audit")
st.title("Audit trail")


@st.cache_data(max_entries=4, show_spinner="Verifying the hash chain ...")
def _verified(_ws, store: str, head_seq: int, head_hash: str):
    # keyed by the head: a new event (or a changed head) means a fresh check
    check = _ws.verify_audit()
    return check.ok, check.n_events, check.head_hash, check.first_broken_seq, check.reason, check.problems, \
        check.warnings


with ui.shown_errors():
    head = ws.audit_head()
    ok, n, digest, broken, reason, problems, warnings = _verified(ws, ws.store.location, head["seq"], head["hash"])
    if ok:
        st.badge(f"Chain intact: {n:,} events; the tables agree with it", icon=":material/verified_user:",
                 color="green")
        st.caption(f"Head digest `{digest}`. Keep an anchor of it outside the store: `workbench audit anchor --out FILE`.")
    elif broken is None:  # the chain holds, but tables were changed behind its back
        st.badge(f"Tables disagree with the chain: {len(problems):,} rows", icon=":material/gpp_bad:", color="red")
        st.error("\n".join(f"- {p}" for p in problems))
    else:
        st.badge(f"Chain broken at event {broken}", icon=":material/gpp_bad:", color="red")
        st.error(f"Event {broken}: {reason}")
    for warning in warnings:
        st.warning(warning)

    c1, c2, c3 = st.columns(3)
    actor = c1.text_input("Actor", placeholder="e.g. lee")
    action = c2.text_input("Action", placeholder="e.g. request.* or model_version.stage")
    entity = c3.text_input("Entity", placeholder="an id, or type/id: request/3")
    c4, c5 = st.columns(2)
    since = c4.date_input("From (UTC)", value=None)
    until = c5.date_input("Until (UTC, inclusive)", value=None)
    filters = dict(actor=actor.strip() or None, action=action.strip() or None, entity=entity.strip() or None,
                   since=since, until=(until + dt.timedelta(days=1)) if until else None)
    limit = st.select_slider("Events shown", [100, 500, 2000, 10000], value=500)
    events = ws.audit_events(limit=limit, **filters)
    if events.is_empty():
        ui.empty("No event matches." if any(filters.values()) else "No events yet: every write appends one.")
    else:
        st.caption(f"{events.height:,} event{'s' if events.height != 1 else ''} shown, newest first.")
        st.dataframe(events.select(["seq", "ts", "actor", "role", "action", "entity_type", "entity_id", "payload"]),
                     hide_index=True, width="stretch")

    if roles.allowed(ws.role, "audit_export"):
        st.subheader("Export")
        fmt = st.radio("Format", ["csv", "json"], horizontal=True)
        if st.button("Prepare the export", icon=":material/download:", help="The export itself is recorded."):
            st.session_state["audit_export"] = (fmt, ws.audit_export(fmt, **filters))
        if "audit_export" in st.session_state:
            kind, data = st.session_state["audit_export"]
            st.download_button(f"Download audit-events.{kind}", data, file_name=f"audit-events.{kind}",
                               mime="text/csv" if kind == "csv" else "application/json")
