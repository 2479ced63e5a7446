"""Users: accounts and roles, locks and blocked addresses (admins only)."""

import streamlit as st

from workbench.people import auth, roles
from workbench.ui import widgets as ui

ws = ui.require_page("users")
st.title("Users")
done = st.session_state.pop("users_done", None)  # the last action's outcome, shown after its rerun
if done:
    st.success(ui.plain(done))
with ui.shown_errors():
    st.dataframe(ws.accounts(), hide_index=True, width="stretch")
    with st.form("add_user", clear_on_submit=True):
        st.subheader("Add a user")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("User name")
        role = c2.selectbox("Role", roles.ROLES)
        password = c3.text_input("Password", type="password",
                                 help=f"At least {auth.PASSWORD_MIN_LENGTH} characters, not a common password.")
        if st.form_submit_button("Add user"):
            ws.add_user(name.strip(), role, password)  # the service applies the password policy
            st.session_state["users_done"] = f"Added {name.strip()} ({role})."
            st.rerun()
    st.subheader("Disable, enable or unlock")
    names = ws.users()["name"].to_list()
    who = st.selectbox("User", names)
    c1, c2, c3 = st.columns(3)
    if c1.button("Disable"):
        ws.set_user_disabled(who, True)
        st.rerun()
    if c2.button("Enable"):
        ws.set_user_disabled(who, False)
        st.rerun()
    if c3.button("Unlock", help="Lift a lock after failed sign-ins; the password stays."):
        ws.unlock_user(who)
        st.session_state["users_done"] = f"Unlocked {who}."
        st.rerun()
    with st.form("reset_password", clear_on_submit=True):
        st.subheader("Reset a password")
        c1, c2 = st.columns(2)
        target = c1.selectbox("Account", names, key="reset_user")
        new_password = c2.text_input("New password", type="password",
                                     help="Also lifts a lock. Tell the user by another channel.")
        if st.form_submit_button("Reset password"):
            ws.set_password(target, new_password)
            st.session_state["users_done"] = f"New password set for {target}; any lock on the account is lifted."
            st.rerun()
    blocked = ws.blocked_addresses()
    if not blocked.is_empty():
        st.subheader("Blocked addresses")
        st.caption(f"{auth.MAX_FAILED} failed sign-ins within {auth.LOCK_MINUTES} minutes block an address "
                   f"for {auth.LOCK_MINUTES} minutes.")
        st.dataframe(blocked, hide_index=True, width="stretch")
        address = st.selectbox("Address", blocked["address"].to_list())
        if st.button("Unblock"):
            ws.unblock_address(address)
            st.session_state["users_done"] = f"Unblocked {address}."
            st.rerun()
