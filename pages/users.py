"""Users: accounts and roles (admins only)."""

import streamlit as st

from workbench import auth, roles, ui

ws = ui.require_page("users")
st.title("Users")
with ui.shown_errors():
    st.dataframe(ws.users(), hide_index=True, width="stretch")
    with st.form("add_user", clear_on_submit=True):
        st.subheader("Add a user")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("User name")
        role = c2.selectbox("Role", roles.ROLES)
        password = c3.text_input("Password", type="password", help="At least 10 characters.")
        if st.form_submit_button("Add user"):
            auth.check_password(password)
            ws.add_user(name.strip(), role, password)
            st.success(f"Added {ui.plain(name)} ({role}).")
            st.rerun()
    st.subheader("Disable or enable")
    names = ws.users()["name"].to_list()
    who = st.selectbox("User", names)
    c1, c2 = st.columns(2)
    if c1.button("Disable"):
        auth.set_disabled(ws, who, True)
        st.rerun()
    if c2.button("Enable"):
        auth.set_disabled(ws, who, False)
        st.rerun()
