"""API tokens: make, see and revoke the personal access tokens notebooks and scripts use with the server."""

import os

import streamlit as st

from workbench.operations import OPERATIONS
from workbench.people import tokens
from workbench.ui import widgets as ui

ws = ui.require_page("tokens")
st.title("API tokens")
url = os.environ.get("WORKBENCH_SERVER_URL") or "http://HOST:PORT"
st.caption("A token lets a notebook or a script act as you through this server: "
           f"`wb.connect(\"{url}\", token=...)`, or `WORKBENCH_URL` and `WORKBENCH_TOKEN`. "
           "It can do what your role may do, never more; limit it to fewer operations when a job needs less.")
made = st.session_state.pop("token_made", None)  # shown once, right after it was made
if made:
    st.success(f"Token {made['id']} ({ui.plain(made['name'])}) made; it expires on {made['expires_at']:%Y-%m-%d}. "
               "Copy it now: it is not shown again.", icon=":material/key:")
    st.code(made["token"], language=None)
done = st.session_state.pop("tokens_done", None)
if done:
    st.success(ui.plain(done))
with ui.shown_errors():
    with st.form("make_token", clear_on_submit=True):
        st.subheader("Make a token")
        c1, c2 = st.columns([2, 1])
        name = c1.text_input("Name", placeholder="laptop, ci, nightly job", help="A label to know it by.")
        days = c2.number_input("Expires in (days)", min_value=1, max_value=tokens.MAX_DAYS, value=tokens.DEFAULT_DAYS)
        limit = st.multiselect("Limit it to these operations (none: all your role may do)", sorted(OPERATIONS))
        if st.form_submit_button("Make token", type="primary"):
            st.session_state["token_made"] = ws.create_token(name, expires_days=int(days), operations=limit or None)
            st.rerun()
    admin = ws.ctx.allowed("manage_users")
    everyone = admin and st.toggle("Every user's tokens", help="Admins see and revoke anyone's tokens.")
    listed = ws.tokens(all_users=True) if everyone else ws.tokens()
    st.subheader("Tokens" if everyone else "Your tokens")
    if listed.is_empty():
        st.info("No tokens yet.")
    else:
        st.dataframe(ui.token_table(listed), hide_index=True, width="stretch")
        active = listed.filter(listed["status"] == "active")
        if not active.is_empty():
            labels = {f"{r['id']}: {r['user']} / {r['name']}": r["id"] for r in active.iter_rows(named=True)}
            chosen = st.selectbox("Token", list(labels))
            if st.button("Revoke", help="It stops working at once."):
                ws.revoke_token(labels[chosen])
                st.session_state["tokens_done"] = f"Revoked token {chosen}."
                st.rerun()
