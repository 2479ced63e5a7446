"""Approvals: the promotion queue per role, a request's evidence and gates, and the decision."""

import polars as pl
import streamlit as st

from workbench.governance import requests as governance
from workbench.ui import widgets as ui

ws = ui.require_page("approvals")
st.title("Approvals")
me, role = ws.user, ws.role


def _label(r: dict) -> str:
    flag = " · stale" if r["stale"] else ""
    return f"#{r['id']} {r['name']} v{r['version']} → {r['to_stage']} ({r['status']}{flag})"


with ui.shown_errors():
    everything = ws.requests()
    if everything.is_empty():
        ui.empty("No promotion requests yet: a data scientist or lead asks with "
                 "`ws.request_promotion(version, 'Production', justification)`.")
        st.stop()
    awaiting = ws.awaiting_me()
    mine = everything.filter(pl.col("requested_by") == me)
    queues = {"Awaiting me": awaiting, "My requests": mine, "All": everything}
    # A shared link, or a decision just taken, opens the first queue that holds its request.
    # Otherwise the queue is the user's choice: fixed keys, so no change is lost (see ui.from_url).
    wanted = ui.query_param("request")
    follow = st.session_state.pop("approvals_follow", False)
    queue = st.session_state.get("approvals_queue")
    if follow or queue not in queues or ui.url_news("approvals_request", "request"):
        holding = [name for name, q in queues.items() if wanted in {str(x) for x in q["id"].to_list()}]
        queue = holding[0] if holding else "Awaiting me"
    ui.hold("approvals_queue", queue)
    queue = st.radio("Queue", list(queues), key="approvals_queue", horizontal=True, label_visibility="collapsed",
                     format_func=lambda name: f"{name} ({queues[name].height})")
    shown = queues[queue]
    st.dataframe(shown.select(["id", "name", "version", "risk_tier", "to_stage", "status", "stale", "sign_offs",
                               "failing_gates", "requested_by", "requested_at"]),
                 hide_index=True, width="stretch", height=min(400, 40 + 35 * max(shown.height, 1)))
    if shown.is_empty():
        ui.empty("Nothing here.")
        st.stop()
    rows = {str(r["id"]): r for r in shown.iter_rows(named=True)}
    ui.from_url("approvals_request", "request", default=next(iter(rows)), options=list(rows))
    pick = st.selectbox("Request", list(rows), key="approvals_request", format_func=lambda i: _label(rows[i]))
    ui.keep_in_url("approvals_request", "request", pick)
    req = ws.request(int(pick))

    st.subheader(f"#{req.id} {ui.plain(req.name)} v{req.version}: {req.from_stage} → {req.to_stage}")
    st.badge(req.status, color={"approved": "green", "rejected": "red", "pending": "orange"}.get(req.status, "gray"))
    st.caption(f"Asked by {ui.plain(req.requested_by)} at {req.requested_at:%Y-%m-%d %H:%M} UTC, {req.risk_tier} risk; "
               f"evidence sha256 `{req.evidence_sha256[:16]}…`" + (f"; needs {req.needs}" if req.needs else ""))
    st.markdown(f"> {ui.plain(req.justification)}")
    if req.stale:
        st.warning("The evidence changed after this request was made: it must be refreshed before anyone decides.",
                   icon=":material/history:")
    if req.failing_gates:
        st.warning(f"Failing gates: {', '.join(req.failing_gates)}. Only a lead may approve past them, with a reason.",
                   icon=":material/block:")

    tabs = st.tabs(["Gates", "Metrics", "Explanation", "Fairness", "Drift", "History"])
    with tabs[0]:
        st.dataframe(pl.DataFrame(req.gates, schema={"gate": pl.String, "passed": pl.Boolean, "detail": pl.String}),
                     hide_index=True, width="stretch")
    with tabs[1]:
        metrics = req.evidence["metrics"]
        st.dataframe(pl.DataFrame({"metric": list(metrics), "value": list(metrics.values())},
                                  schema={"metric": pl.String, "value": pl.Float64}), hide_index=True)
        st.json(req.evidence["model"], expanded=False)
    for tab, kind in zip(tabs[2:5], governance.EVIDENCE_KINDS):
        with tab:
            if req.evidence[kind] is None:
                ui.empty(f"No {kind} evidence for this version.")
            else:
                st.json(req.evidence[kind])
                page = {"explanation": "explanations", "fairness": "fairness", "drift": "drift"}[kind]
                st.markdown(f"[Open the {ui.PAGES[page][1]} page](/{page})")
    with tabs[5]:
        st.markdown("**Decisions**")
        if req.decisions:
            st.dataframe(pl.DataFrame(req.decisions), hide_index=True, width="stretch")
        else:
            ui.empty("None yet.")
        st.markdown("**Comments**")
        for c in req.comments:
            st.markdown(f"**{ui.plain(c['actor'])}** ({c['role'].replace('_', ' ')}), {c['created_at']:%Y-%m-%d %H:%M}: "
                        f"{ui.plain(c['text'])}")
        st.markdown(f"**Stage changes of {ui.plain(req.name)}**")
        st.dataframe(ws.stage_history(req.name), hide_index=True, width="stretch")

    may = ws.request_actions(req.id)  # None where this user may, else why not
    if may["decide"] is None:
        with st.form("decide"):
            note = st.text_area("Comment (a rejection needs one)")
            override = st.text_input("Override reason (a lead approving past failing gates)") if req.failing_gates else None
            approve, reject = st.columns(2)
            if approve.form_submit_button("Approve", type="primary", icon=":material/check:"):
                ws.decide(req.id, True, note, override_reason=override or None)
                st.session_state["approvals_follow"] = True  # show it where it went
                st.rerun()
            if reject.form_submit_button("Reject", icon=":material/close:"):
                ws.decide(req.id, False, note)
                st.session_state["approvals_follow"] = True  # show it where it went
                st.rerun()
    elif req.status == "pending":
        st.caption(may["decide"])
    if may["refresh"] is None:
        if st.button("Refresh the evidence", icon=":material/refresh:"):
            ws.refresh_request(req.id)
            st.session_state["approvals_follow"] = True  # show it where it went
            st.rerun()
    if may["withdraw"] is None and st.button("Withdraw", icon=":material/undo:"):
        ws.withdraw(req.id, "withdrawn from the dashboard")
        st.session_state["approvals_follow"] = True  # show it where it went
        st.rerun()
    if may["comment"] is None:
        with st.form("comment", clear_on_submit=True):
            text = st.text_input("Add a comment")
            if st.form_submit_button("Comment", icon=":material/chat:"):
                ws.comment(req.id, text)
                st.rerun()
